"""Compression recipes: per-layer density (or quality), codebook bits, clustering init, gap bits.

A recipe maps module names (shell-style patterns allowed) or layer kinds (`kind:linear`,
`kind:conv2d`, `kind:conv1d`, `kind:conv_transpose2d`, `kind:embedding`, and `kind:lstm`,
`kind:gru`, `kind:rnn` for a recurrent layer's matrices) to settings; layers not named get the
preset's defaults. Exact names win over patterns, patterns over kinds, kinds over the preset.
"""

import fnmatch
import json
import os

from cdnn_runtime.constants import MAX_CODEBOOK_SIZE, MAX_GAP_BITS, MIN_GAP_BITS
from cdnn_runtime.errors import CdnnRecipeError

from .cluster import INITS
from .models import DEEP_COMPRESSION_DENSITY

KEYS = {"density", "quality", "bits", "init", "gap_bits", "bias"}
#: Most codebook bits: 2**bits centroids fit the codebook.
MAX_CODE_BITS = MAX_CODEBOOK_SIZE.bit_length() - 1
#: How a layer's bias is stored: float32, or float16 (half the bytes; a relative rounding error
#: of at most 2^-11, which no accuracy we measured noticed).
BIAS_DTYPES = ("float32", "float16")

#: The kinds of compressed layer (the graph op of their weight).
KINDS = ("linear", "conv2d", "conv1d", "conv_transpose2d", "embedding", "lstm", "gru", "rnn")
#: Every convolution gets what Deep Compression gives conv layers; an embedding table (rows of
#: a matrix, as a linear layer's weight) and a recurrent layer's W_ih and W_hh (each the weight
#: of a linear map) what it gives fully connected ones.
_CONVS = ("conv2d", "conv1d", "conv_transpose2d")
_MATRICES = ("linear", "embedding", "lstm", "gru", "rnn")

PRESETS = {
    # Deep Compression: conv 8 bits, fc 5 bits; its published densities for the reference nets.
    "deep-compression": {**{f"kind:{k}": {"density": 0.5, "bits": 8} for k in _CONVS},
                         **{f"kind:{k}": {"density": 0.1, "bits": 5} for k in _MATRICES}},
    "lossless-ish": {**{f"kind:{k}": {"density": 1.0, "bits": 8} for k in _CONVS},
                     **{f"kind:{k}": {"density": 1.0, "bits": 8} for k in _MATRICES}},
}


def load_recipe(source):
    """A recipe from a dict, a JSON file, or a YAML file (when PyYAML is installed)."""
    if source is None or isinstance(source, dict):
        return dict(source or {})
    path = os.fspath(source)
    with open(path) as fh:
        text = fh.read()
    if path.endswith((".yaml", ".yml")):
        try:
            import yaml
        except ImportError:
            raise CdnnRecipeError(f"{path}: reading YAML recipes needs PyYAML "
                                  "(pip install pyyaml), or write the recipe as JSON") from None
        data = yaml.safe_load(text)
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CdnnRecipeError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise CdnnRecipeError(f"{path}: a recipe is a mapping of layer names to settings")
    return data


def _check_settings(where, settings):
    if not isinstance(settings, dict):
        raise CdnnRecipeError(f"recipe entry {where!r}: settings must be a mapping")
    unknown = sorted(set(settings) - KEYS)
    if unknown:
        raise CdnnRecipeError(f"recipe entry {where!r}: unknown setting {unknown[0]!r} "
                              f"(known: {', '.join(sorted(KEYS))})")
    if "density" in settings and settings["density"] is not None:
        d = settings["density"]
        if not isinstance(d, (int, float)) or not 0 < d <= 1:
            raise CdnnRecipeError(f"recipe entry {where!r}: density must be in (0, 1], got {d!r}")
    if "quality" in settings and settings["quality"] is not None:
        q = settings["quality"]
        if not isinstance(q, (int, float)) or q < 0:
            raise CdnnRecipeError(f"recipe entry {where!r}: quality must be >= 0, got {q!r}")
    if "bits" in settings:
        b = settings["bits"]
        if not isinstance(b, int) or isinstance(b, bool) or not 1 <= b <= MAX_CODE_BITS:
            raise CdnnRecipeError(f"recipe entry {where!r}: bits must be 1 to {MAX_CODE_BITS}, "
                                  f"got {b!r}")
    if "gap_bits" in settings and settings["gap_bits"] is not None:
        g = settings["gap_bits"]
        if not isinstance(g, int) or isinstance(g, bool) or not MIN_GAP_BITS <= g <= MAX_GAP_BITS:
            raise CdnnRecipeError(f"recipe entry {where!r}: gap_bits must be {MIN_GAP_BITS} to "
                                  f"{MAX_GAP_BITS}, got {g!r}")
    if "bias" in settings and settings["bias"] not in BIAS_DTYPES:
        raise CdnnRecipeError(f"recipe entry {where!r}: bias must be one of "
                              f"{', '.join(BIAS_DTYPES)}, got {settings['bias']!r}")
    if "init" in settings and settings["init"] not in INITS:
        raise CdnnRecipeError(f"recipe entry {where!r}: init must be one of {', '.join(INITS)}")


def detect_reference(layers):
    """The name of the reference network whose layer names these are, or None."""
    names = set(layers)
    for model, table in DEEP_COMPRESSION_DENSITY.items():
        if set(table) == names:
            return model
    return None


def resolve(layers, recipe=None, preset="deep-compression", model_name=None):
    """Effective settings per layer: {module name: {density|quality, bits, init, gap_bits}}.

    `layers` maps module name -> kind (one of KINDS).
    """
    if preset not in PRESETS:
        raise CdnnRecipeError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    recipe = load_recipe(recipe)
    for key, settings in recipe.items():
        _check_settings(key, settings)
        if key.startswith("kind:") and key[5:] not in KINDS:
            raise CdnnRecipeError(f"recipe entry {key!r}: kinds are "
                                  f"{', '.join('kind:' + k for k in KINDS)}")
        if not key.startswith("kind:") and not any(fnmatch.fnmatchcase(n, key) for n in layers):
            raise CdnnRecipeError(f"recipe entry {key!r} matches no layer of the model "
                                  f"(layers: {', '.join(layers)})")
    model_name = model_name or detect_reference(layers)
    out = {}
    for name, kind in layers.items():
        s = {"init": "kmeans++", "gap_bits": None, "bias": "float32"}
        s.update(PRESETS[preset][f"kind:{kind}"])
        if preset == "deep-compression" and model_name in DEEP_COMPRESSION_DENSITY:
            s["density"] = DEEP_COMPRESSION_DENSITY[model_name].get(name, s["density"])
        layered = [recipe.get(f"kind:{kind}")]
        layered += [v for k, v in recipe.items() if not k.startswith("kind:") and k != name
                    and fnmatch.fnmatchcase(name, k)]
        layered.append(recipe.get(name))
        for extra in layered:
            if extra:
                if "quality" in extra and extra["quality"] is not None:
                    s.pop("density", None)
                if "density" in extra and extra["density"] is not None:
                    s.pop("quality", None)
                s.update(extra)
        out[name] = s
    return out
