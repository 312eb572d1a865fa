"""mlstack on the user's machine: CLI, local cloud and demo. Never deployed to Lambda."""
