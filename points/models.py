"""The reputation / contribution points ledger and rewards: built in the points issue."""
