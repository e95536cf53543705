"""Rules the Emmett compiler and the VP runtime share: located diagnostics and call-graph cycles.

The compiler may import nothing of the runtime but its language specification,
so what both apply alike lives here, in a package both import (folder
`shared/`, installed as `vprobes_shared`).
"""
