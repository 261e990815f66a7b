"""The monitoring job's library; `steps/monitor.py` is its entry point.

Processing jobs get this package in the library folder (`/opt/ml/processing/input/lib/monitoring`,
see pipelines/code_bundle.py), where it is imported as `monitoring`; here it is `steps.monitoring`.
Its modules import each other relatively so both names work, and import nothing at package level;
model.py imports `artifact`, which lies beside the package in that folder, by name.
"""
