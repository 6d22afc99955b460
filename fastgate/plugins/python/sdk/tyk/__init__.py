"""Tyk's ``tyk`` package for Python plugins, as fastgate provides it.

A plugin written for Tyk imports ``from tyk.decorators import *`` and
``from gateway import TykGateway as tyk``; fastgate puts this directory on
``sys.path`` when it loads the first Python plugin, so both resolve here.
"""
