"""The cross-simulator HRTEM set: its conditions, specimens, masks, defects and scores."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from helpers import load_script

SCRIPT = Path(__file__).parents[2] / "benchmarks" / "hrtem_cross_simulator.py"
pytest.importorskip("abtem", reason="abTEM is the test extra 'oracle' (make test installs it)")


@pytest.fixture(scope="module")
def cross():  # type: ignore[no-untyped-def]
    return load_script(SCRIPT)


def test_conditions_are_a_function_of_the_set_seed_and_index(cross) -> None:  # type: ignore[no-untyped-def]
    first = [cross.conditions(i) for i in range(cross.SETS["Au"]["size"])]
    assert first == [cross.conditions(i) for i in range(cross.SETS["Au"]["size"])]
    assert first[0] != cross.conditions(0, "CdSe")
    for case in first:
        assert case["pixel_size"] in cross.PIXEL_SIZES
        assert all(20.0 <= p["diameter"] <= 50.0 for p in case["particles"])
        assert 1 <= len(case["particles"]) <= 3
        assert 20.0 <= case["carbon_thickness"] <= 80.0 and 100.0 <= case["dose"] <= 1200.0
        # Room for the largest particle with its surroundings, and a fast FFT grid.
        assert case["extent"] >= 1.25 * max(p["diameter"] for p in case["particles"]) - 0.3
        assert cross._smooth(round((case["extent"] + 2 * case["margin"]) / cross.SAMPLING))
    assert any(p["edge_cut"] for case in first for p in case["particles"])
    assert len({case["pixel_size"] for case in first}) == len(cross.PIXEL_SIZES)


@pytest.mark.parametrize(("shape", "diameter"), [("wulff", 30.0), ("decahedron", 30.0),
                                                  ("icosahedron", 30.0), ("faceted", 30.0)])  # fmt: skip
def test_particles_have_about_the_wanted_size(cross, shape: str, diameter: float) -> None:  # type: ignore[no-untyped-def]
    atoms = cross.make_particle(diameter, shape, True, seed=1)
    volume = cross.CDSE_VOLUME if shape == "faceted" else cross.AU_LATTICE**3 / 4
    equivalent = (6 * len(atoms) * volume / math.pi) ** (1 / 3)
    assert equivalent == pytest.approx(diameter, rel=0.15)
    assert np.allclose(atoms.positions.mean(0), 0.0, atol=1.5)
    expected = {"Cd", "Se"} if shape == "faceted" else {"Au"}
    assert set(atoms.get_chemical_symbols()) == expected


def test_carbon_is_dense_and_has_no_close_pairs(cross) -> None:  # type: ignore[no-untyped-def]
    from scipy.spatial import cKDTree

    film = cross.carbon_film((20.0, 20.0), 10.0, seed=0)
    assert len(film) == round(0.10 * 20 * 20 * 10)
    positions = film.positions.copy()
    positions[:, :2] %= 20.0
    positions[:, 2] += 10.0  # the last push may leave an atom a little below z = 0
    tree = cKDTree(positions, boxsize=[20.0, 20.0, 1e3])
    assert len(tree.query_pairs(1.0)) == 0  # pushed apart to about 1.3 A


def test_a_small_image_renders_with_its_mask_on_the_particle(
    cross, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    # The set's code at a size abTEM renders in seconds: 0.1 A sampling, one phonon.
    monkeypatch.setattr(cross, "SAMPLING", 0.1)
    monkeypatch.setattr(cross, "PIXEL_SIZES", (0.2,))
    monkeypatch.setattr(cross, "FIELD", (32.0, 32.0))
    monkeypatch.setattr(cross, "DIAMETER", (24.0, 24.0))
    monkeypatch.setattr(cross, "CARBON", (4.0, 4.0))
    monkeypatch.setattr(cross, "PHONONS", 1)
    index = next(
        i for i in range(50)
        if len(cross.conditions(i)["particles"]) == 1
        and not cross.conditions(i)["particles"][0]["edge_cut"]
    )  # fmt: skip
    record = cross.render_one(index, tmp_path)
    content = np.load(tmp_path / f"{index:03d}.npz")
    image, mask = content["image"], content["instances"] > 0
    assert image.shape == mask.shape == (record["side"], record["side"])
    area = math.pi * (12.0 / 0.2) ** 2
    assert 0.4 * area < mask.sum() < 1.3 * area
    # Counts: the dose times the pixel area (0.04 A^2), about 1 in units of the vacuum.
    assert image.mean() == pytest.approx(record["dose"] * 0.04, rel=0.2)
    # Rendering again keeps the file (resumable) and returns the same record.
    assert cross.render_one(index, tmp_path) == json_record(content)


def json_record(content) -> dict:  # type: ignore[no-untyped-def]
    import json

    return json.loads(str(content["record"]))


def test_particles_rest_side_by_side_or_are_left_out(cross, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ase import Atoms
    from scipy.spatial import cKDTree

    monkeypatch.setattr(cross, "carbon_film", lambda size, thickness, seed: Atoms())
    several = [
        i for i in range(cross.SETS["Au"]["size"]) if len(cross.conditions(i)["particles"]) > 1
    ]
    assert len(several) >= 10
    for index in several[:3]:
        case = cross.conditions(index)
        diameters = [p["diameter"] for p in case["particles"]]
        assert case["extent"] >= math.sqrt(cross.PACKING * sum(d**2 for d in diameters)) - 0.3
        _, particles = cross.specimen(case)
        records = case["particles"]
        assert len(particles) == sum(r["placed"] for r in records) >= 1
        # In projection no atom of one particle within CONTACT of another's: no overlap.
        for a in range(len(particles)):
            for b in range(a + 1, len(particles)):
                tree = cKDTree(particles[a].positions[:, :2])
                assert tree.query(particles[b].positions[:, :2])[0].min() >= cross.CONTACT
        for record in (r for r in records if r["placed"] and not r["edge_cut"]):
            low, high = record["radius_projected"], case["extent"] - record["radius_projected"]
            assert all(low - 1e-6 <= c <= high + 1e-6 for c in record["centre"])
    # A particle without room is recorded and does not count for the size bins.
    record = {
        "particles": [{"diameter": 45.0, "placed": False}, {"diameter": 25.0, "placed": True}]
    }
    assert cross.largest_particle(record) == 25.0


def test_images_of_another_version_of_the_set_are_not_mixed_in(cross, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    record = {**cross.conditions(0), "version": cross.SET_VERSION - 1}
    zeros = np.zeros((2, 2), np.float32)
    np.savez_compressed(
        tmp_path / "000.npz", image=zeros, instances=zeros, record=json.dumps(record)
    )
    with pytest.raises(ValueError, match="version"):
        cross.render_one(0, tmp_path)
    record["version"] = cross.SET_VERSION
    np.savez_compressed(
        tmp_path / "000.npz", image=zeros, instances=zeros, record=json.dumps(record)
    )
    assert cross.render_one(0, tmp_path) == record  # finished: kept, not rendered again


def test_scores_pool_pixels_and_bin_by_size_and_dose(cross) -> None:  # type: ignore[no-untyped-def]
    truth = np.zeros((10, 10), bool)
    truth[:5] = True
    items = [
        {
            "truth": truth,
            "record": {"particles": [{"diameter": 25.0}], "dose": 200.0, "pixel_size": 0.15},
        },
        {
            "truth": truth,
            "record": {"particles": [{"diameter": 45.0}], "dose": 1200.0, "pixel_size": 0.25},
        },
    ]
    perfect, half = truth.copy(), np.zeros((10, 10), bool)
    half[:5, :5] = True
    result = cross.score_masks(items, [perfect, half])
    assert result["overall"]["precision"] == 1.0
    assert result["overall"]["recall"] == pytest.approx(75 / 100)
    assert result["size"]["20-30"]["f1"] == 1.0 and result["dose"]["800-1200"]["recall"] == 0.5
    assert result["mean_image_f1"] == pytest.approx((1.0 + 2 * 25 / 75) / 2)
    assert result["pixel"]["0.15"]["f1"] == 1.0 and result["pixel"]["0.25"]["recall"] == 0.5
    assert "0.2" not in result["pixel"]  # no image at that pixel size


def test_recall_per_kind_of_particle_from_its_own_mask(cross) -> None:  # type: ignore[no-untyped-def]
    instances = np.zeros((10, 10), np.int16)
    instances[:4, :4], instances[6:, 6:] = 1, 2  # two placed particles; the middle one was not
    particles = [
        {"shape": "wulff", "zone_axis": True},
        {"shape": "icosahedron", "zone_axis": True, "placed": False},
        {"shape": "icosahedron", "zone_axis": False},
    ]
    item = {"truth": instances > 0, "instances": instances, "record": {"particles": particles}}
    found = np.zeros((10, 10), bool)
    found[:4, :4], found[6, 6] = True, True  # the first whole, one pixel of the other
    table = cross.particle_recall([item], [found])
    assert table == {
        "icosahedron, off axis": {"recall": 1 / 16, "particles": 1, "missed": 1},
        "wulff, zone axis": {"recall": 1.0, "particles": 1, "missed": 0},
    }


def test_camera_defects_are_seeded_per_image(cross) -> None:  # type: ignore[no-untyped-def]
    image = np.full((64, 64), 20.0, np.float32)
    first, again, other = cross.corrupt(image, 0), cross.corrupt(image, 0), cross.corrupt(image, 1)
    assert np.array_equal(first, again) and not np.array_equal(first, other)
    assert first[:, :4].mean() > 3 * image.mean()  # the bright edge
    assert (first > 150).any()  # hot pixels
