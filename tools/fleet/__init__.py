"""One script on a fleet of simulated VMs, run on Dask, with the results merged exactly.

`members` says which VMs make up a fleet, `worker` runs one of them where a
Dask worker runs it, `merge` combines their results (exactly, in any order),
`runner` drives the cluster and `result` holds the merged result.
"""
