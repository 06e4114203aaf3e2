"""Pure interlock kernel: rules, alarms and latches with injected time; no I/O."""
