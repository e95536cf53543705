"""Rules the Emmett compiler and the VP runtime share: located diagnostics, what a script file
must be to be read (script_text) and call-graph cycles.

The compiler may import nothing of the runtime but its language specification,
so what both apply alike lives here, in a package both import (folder
`shared/`, installed as `vprobes_shared`).
"""
