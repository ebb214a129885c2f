"""The teacher's side of the course kit (hidden checks, buggy variants, redactions): never in a student copy."""
