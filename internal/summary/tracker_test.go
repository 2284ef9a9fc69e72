package summary

// Tracker is a Flows table and a Names decoder fed from one goroutine, for
// the tests: every frame is accounted, and the few that may carry names
// are decoded at once. The product feeds a Flows in line and a Names from
// another goroutine instead (cmd/nsntrace's summarizer), joined by
// NewReport.
type Tracker struct {
	flows *Flows
	names *Names
}

// New returns an empty Tracker.
func New(cfg *Config) *Tracker {
	return &Tracker{flows: NewFlows(cfg), names: NewNames()}
}

// Observe accounts one Ethernet frame: data are the captured bytes, length
// the original frame length, ts the capture time in Unix ns, outbound
// whether the traced program sent it.
func (t *Tracker) Observe(data []byte, length int, ts int64, outbound bool) {
	if n := t.flows.Account(data, length, ts, outbound); n > 0 {
		t.names.Decode(data[:n], outbound)
	}
}

// Flows is the tracker's conversation table.
func (t *Tracker) Flows() *Flows { return t.flows }

// Names is the tracker's name decoder; Names().Names() are the names
// learned for each remote address.
func (t *Tracker) Names() *Names { return t.names }

// Report builds the summary.
func (t *Tracker) Report(m Meta) *Report { return NewReport(m, t.flows, t.names) }
