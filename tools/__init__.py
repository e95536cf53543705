"""User commands (installed as the `vprobe_tools` package).

Commands: `vprobe` (vprobe_cli), `vmrun` (vmrun_cli), `vprobe-aggr` (aggr_view),
`vprobe-stacks` (stacks_view).  The pieces they share:

* sources -- reading scripts, concatenating VP (with locations mapped back),
  compiling Emmett, loading; guest_library -- the guest's VP helpers on demand;
* targets -- the VM a command works on (in process, or running in the background);
* control -- a background VM's files, control socket and protocol; vm_daemon -- the
  background VM itself; pacing -- simulated time paced to the wall clock;
* logparse -- the log read back (text, aggregate blocks, faults); json_out -- its JSON
  form; log_views -- the pipeline from a log to the printers; log_input -- saved logs;
  symbolize -- guest stacks and symbols; aggr_view, stacks_view -- the printers;
* output -- byte-exact log streams and files; listings -- probe and global lists;
  errors -- the messages commands report.
"""
