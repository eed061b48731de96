"""Service ratings, inspections and scorecards: built in the alliance issue."""
