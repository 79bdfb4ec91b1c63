"""Pieces both command lines (`cdnn`, `cdnn-runtime`) build their commands from: argument
types, the layout of a command's --help, and JSON output."""

import argparse
import json
import sys
import textwrap


def positive(text):
    """argparse type: an integer >= 1."""
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return v


def describe(text, *examples):
    """A command's --help description: the text wrapped, then its examples."""
    out = textwrap.fill(text, 88)
    if examples:
        out += "\n\nexample" + ("s" if len(examples) > 1 else "") + ":\n" + \
            "\n".join("  " + e for e in examples)
    return out


def add_command(sub, name, func, help, text, *examples):
    """A subcommand of the subparsers `sub` that runs `func(args)`; its --help shows `help`
    in the command list and `text` then the examples on its own page."""
    p = sub.add_parser(name, help=help, description=describe(text, *examples),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(func=func)
    return p


def print_json(obj, out=None):
    """`obj` as indented JSON with sorted keys and a final newline (the commands' --json)."""
    out = out or sys.stdout
    json.dump(obj, out, indent=1, sort_keys=True)
    out.write("\n")
