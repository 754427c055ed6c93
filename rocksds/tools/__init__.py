"""Tools on top of the format: :mod:`.info` (what a dataset holds), :mod:`.preview` (render samples as images)
and :mod:`.demo` (a synthetic end-to-end run). Each is a module of its own; import the one you need."""
