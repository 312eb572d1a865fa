"""The training image's entrypoint: Preprocess and Train as ECS tasks on Fargate."""
