"""What a training task on Fargate left in the run, read back into the state machine's run."""
