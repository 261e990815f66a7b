"""The monitoring library: `steps/monitor.py` runs its jobs, and `steps/evaluate.py` writes each
version's drift baseline with it.

Processing jobs get this package in the library folder (`/opt/ml/processing/input/lib/monitoring`,
see pipelines/code_bundle.py), where it is imported as `monitoring`; here it is `steps.monitoring`.
Its modules import each other relatively so both names work, and import nothing at package level;
model.py and baseline.py import `artifact` and `splits`, which lie beside the package in that
folder, by name.
"""
