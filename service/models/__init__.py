"""The trained model as data: the portable JSON document and its numpy predictor."""
