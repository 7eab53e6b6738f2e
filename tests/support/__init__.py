"""What tests share besides data: real services and stand-ins, waiting, and how a missing service is
reported (a skip with a hint locally, a failure under CI=true). Test data lives in tests/factories."""
