"""Bring models trained elsewhere into oar as packages: PaddlePaddle (``oar import paddle``)."""
