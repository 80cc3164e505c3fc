"""What the architecture search needs besides training: patterns and their derivation, costs,
the resource term, the collapse report and the plots."""
