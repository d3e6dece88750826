"""Shared fixtures: a tiny generated SpaceNet 2 stub area, its tiles and its prepared folder.

The session-scoped folders are shared by every test of the package: copy them (``copy_area``)
before changing anything inside.

Tiles of ``spacenet_area`` (6 tiles of 64 px, seed 0; see :mod:`data_stubs.spacenet`):
img1 normal, img2 empty (0-byte) GeoJSON, img3 no-data corner wedge, img5 ``"features": []``;
even tiles are stored band-interleaved (planar).
"""

from __future__ import annotations

import shutil

import pytest

from assignment2.data import load_tiles
from assignment2.prepare import PrepareConfig, prepare
from data_stubs.spacenet import generate_area

TINY_AREA = {"seed": 0, "n_tiles": 6, "tile_size": 64}


@pytest.fixture(scope="session")
def spacenet_area(tmp_path_factory):
    """``.../raw/AOI_2_Vegas_Train`` of a 6-tile, 64-pixel stub area (read-only)."""
    return generate_area(tmp_path_factory.mktemp("raw"), **TINY_AREA)


@pytest.fixture(scope="session")
def spacenet_tiles(spacenet_area):
    """:class:`assignment2.data.TileSet` of ``spacenet_area`` (do not modify the arrays)."""
    return load_tiles(spacenet_area)


@pytest.fixture(scope="session")
def prepared_area(spacenet_area, tmp_path_factory):
    """Prepared folder (images/, masks/, instances/) of ``spacenet_area`` (read-only)."""
    out = tmp_path_factory.mktemp("prepared")
    prepare(PrepareConfig(spacenet_area, out))
    return out


@pytest.fixture
def copy_area(tmp_path):
    """Copy a (read-only) fixture folder into this test's ``tmp_path`` and return the copy."""
    def _copy(folder):
        return shutil.copytree(folder, tmp_path / folder.name)
    return _copy
