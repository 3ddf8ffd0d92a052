"""Speed-ups for the 84 configs of the zoo.

For every ``mmdet::`` / ``mmseg::`` / ``mmpretrain::`` base, mmengine looks the
path up among the models of the package by reading all of its metafiles (about
100 YAML files, ~0.3 s) and, for a ``_base_/...`` path, gives up with a
ValueError. The answer only depends on the two arguments, so the tests memoise
it, failures included; parsing a config then takes a few milliseconds.
"""
import pytest
import torch
from mmengine.config import config as mmengine_config


@pytest.fixture(scope='session', autouse=True)
def memoise_external_config_lookup():
    original = mmengine_config._get_external_cfg_path
    answers = {}

    def lookup(package_path: str, cfg_file: str) -> str:
        key = (package_path, cfg_file)
        if key not in answers:
            try:
                answers[key] = original(package_path, cfg_file)
            except ValueError as err:
                answers[key] = err
        if isinstance(answers[key], ValueError):
            raise answers[key]
        return answers[key]

    mmengine_config._get_external_cfg_path = lookup
    yield
    mmengine_config._get_external_cfg_path = original


@pytest.fixture(scope='module', autouse=True)
def one_thread():
    """The forward passes here are many small ops, where intra-op threads only add
    synchronisation (about 5x slower with two threads on a busy two-core machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
