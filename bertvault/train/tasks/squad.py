METRICS = ("f1",)
DEFAULTS = {}


def prepare(settings, source, lowercase):
    raise NotImplementedError
