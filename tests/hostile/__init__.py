"""Hostile and broken servers (issue 13): loopback servers that misbehave on purpose, and
end-to-end tests of what the tap does against them. ``cases.CASES`` lists them as data."""
