"""Code shared by every mlstack Lambda function (shipped as the core layer)."""
