"""Step Functions task: a finished training task's result, or its failure by name."""
