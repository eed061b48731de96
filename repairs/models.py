"""Incident reports and repair requests: built in the repairs issue."""
