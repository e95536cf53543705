"""The user tools (installed as the `vprobe_tools` package), grouped by what each part is.

* commands/ -- the commands on click, their options, help and exit statuses: `vprobe`
  (commands.vprobe; what a run does: vprobe_run), `vmrun` (commands.vmrun), `vprobe-aggr`
  and `vprobe-stacks` (commands.vprobe_aggr, commands.vprobe_stacks), `vprobe-report`
  (commands.vprobe_report); what every command
  shares (commands.base: man-page help, usage errors, --version); what the printers of
  saved logs share (commands.saved_log); the options vprobe shares with them
  (commands.options).  `emmettc` is the compiler's own (emmett.cli).
* scripts/ -- what a probe script is made of: reading its files, concatenating VP with
  locations mapped back, compiling Emmett, loading (sources); the guest's VP helpers
  added on demand (guest_library).
* vm/ -- the VMs the commands work on: in this process or in the background (targets);
  the background VM itself (daemon), its files, control socket and protocol (control),
  simulated time paced to the wall clock (pacing); what a machine tells the commands
  about itself, its probe points, globals and guest symbols (machine_info); the VM's
  log file (log_file).
* log/ -- the log read back: its text, aggregate blocks and faults (parse), its JSON
  form (json_lines), saved and streamed logs read into the views (reader).
* views/ -- what people see of a log: sorted aggregate tables (aggr), symbolized,
  folded and dot stacks (stacks), JSON lines (json_view), probe and global lists
  (listings), guest stacks and their symbols (symbolize); the pipeline from a log
  to the views (pipeline); the HTML report (report/: its view, sections, templates).
* errors -- the messages commands report; output -- byte-exact log streams and files.

Dependencies go one way: commands use everything; vm uses scripts; views read the
log's formats; log, scripts and views import no command and no VM.
"""
