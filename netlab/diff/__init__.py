"""Pure comparison of two shapes of a lab: planned against read (drift), rules against
rules (rule drift), a plan against a kernel's view (compare). Nothing here reads the kernel."""
