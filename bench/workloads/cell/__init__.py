"""What every workload's cell shares: the runner-to-worker message, the cell context (model,
arguments, data spec, run length, counters around the timed phase), the offline timed-steps
measurement that train and predict build on, parity and profiling."""
