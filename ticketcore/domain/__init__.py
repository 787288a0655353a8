"""The helpdesk domain: value types and the lifecycle state machine, free of I/O."""
