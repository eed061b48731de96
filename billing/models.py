"""Bills, payments, the escrow ledger and payouts: built in the billing issue."""
