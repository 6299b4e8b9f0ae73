package health

// WriterGone reports whether the process that wrote v is gone: v then
// speaks for no live reconcile, however recent it is.
func (v *View) WriterGone() bool { return v.PID > 0 && !alive(v.PID) }
