"""SAGEMAKER_SERVING_MODULE for the sagemaker-containers benchmark: the WSGI app of the SageMaker
scikit-learn serving image (sagemaker_sklearn_container.serving, which is not on PyPI), rebuilt on
sagemaker-containers' public framework API with the same behaviour:

- the user module named by SAGEMAKER_PROGRAM is imported once (``serve`` already pip-installed
  SAGEMAKER_SUBMIT_DIRECTORY into the environment, as the image does);
- its model_fn / input_fn / predict_fn / output_fn go into a ``transformer.Transformer``
  (framework defaults for the ones it leaves out), which is initialised (``model_fn`` called) on
  the first request a gunicorn worker gets;
- ``worker.Worker`` is the Flask app answering ``GET /ping`` and ``POST /invocations``.

This file is copied into the benchmark venv's site-packages as ``bench_sklearn_serving``.
"""

import importlib

import numpy as np
from sagemaker_containers.beta.framework import content_types, encoders, env, transformer, worker


def default_input_fn(input_data, content_type):
    array = encoders.decode(input_data, content_type)
    return array.astype(np.float32) if content_type in content_types.UTF8_TYPES else array


def default_predict_fn(input_data, model):
    return model.predict(input_data)


def default_output_fn(prediction, accept):
    return worker.Response(encoders.encode(prediction, accept), accept, mimetype=accept)


def _transformer_for(user_module):
    transform_fn = getattr(user_module, "transform_fn", None)
    model_fn = getattr(user_module, "model_fn", transformer.default_model_fn)
    if transform_fn is not None:
        return transformer.Transformer(model_fn=model_fn, transform_fn=transform_fn)
    return transformer.Transformer(
        model_fn=model_fn,
        input_fn=getattr(user_module, "input_fn", None) or default_input_fn,
        predict_fn=getattr(user_module, "predict_fn", None) or default_predict_fn,
        output_fn=getattr(user_module, "output_fn", None) or default_output_fn,
    )


app = None


def main(environ, start_response):
    global app
    if app is None:
        serving_env = env.ServingEnv()
        user_module = importlib.import_module(serving_env.module_name)
        user_transformer = _transformer_for(user_module)
        user_transformer.initialize()
        app = worker.Worker(transform_fn=user_transformer.transform, module_name=serving_env.module_name)
    return app(environ, start_response)
