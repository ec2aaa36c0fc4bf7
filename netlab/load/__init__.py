"""``netlab load``: a bounded HTTP load from a lab's client or a task, and its report."""
