"""The prediction API behind API Gateway: onnxruntime only, never scikit-learn.

Handler: ``mlstack_predict.app.handler`` (template.yaml).
"""
