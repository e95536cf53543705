"""The HTML report (`vprobe --html FILE`, `vprobe-report`): one self-contained page of a run.

`collect.ReportView` is a view of the log pipeline like the others: it keeps
the log's lines (faults marked), each aggregate's epochs and the guest stacks.
`model` turns what it kept, with the run's summary (`RunSummary`), into the
page's sections, from the same data the text views print (the `-a` tables'
columns and formats, the `-s --folded` stacks); `render` fills the jinja2
templates kept beside this package (`templates/`), CSS, JavaScript and the
data inline, so the page needs no network.
"""
