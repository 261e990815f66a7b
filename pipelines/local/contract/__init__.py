"""The API contract: the service models botocore ships, and checks of values against their shapes.

Low in the layers so that every part may check what it is given against what AWS would accept:
the front checks requests and responses, the executor checks a step's Arguments.
"""
