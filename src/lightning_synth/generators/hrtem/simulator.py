"""HRTEM micrographs of nanoparticles on amorphous carbon, with masks, at a chosen fidelity.

One call makes one sample from a seed: a specimen (fcc or user particles on a carbon film),
optics drawn from ranges, a multislice simulation on the simulation grid, then the detector.
The physics lives in the sibling modules; this module decides what goes into a field.

**Fidelity tiers** (cumulative): ``basic`` (static atoms, defocus only, coherent, ideal
detector) -> ``thermal`` (+ frozen phonons) -> ``aberrations`` (+ residual aberrations and
partial coherence) -> ``plasmon`` (+ plasmon-loss background) -> ``full`` (+ detector MTF).
Each ingredient can also be switched on its own (``thermal``, ``aberrations``, ``plasmon``,
``mtf``); dose noise is a separate knob (``dose=None`` is noiseless) because the study found it
acts as a regulariser of its own.

**Approximations, stated.** The carbon film is amorphous: its thermal motion only re-draws
an amorphous arrangement, so it gets a Debye-Waller-smeared static potential, while the
particle gets frozen phonons. Plasmon losses are modelled as an incoherent background: a
fraction ``1 - exp(-t / mean_free_path)`` of the electrons (``t`` the mean projected thickness)
forms an image with the chromatic defocus spread of the loss and a Gaussian blur from the
momentum transfer; the rest forms the elastic image.

**Masks.** From the particle atoms alone (static positions): pixels where the particle's
projected potential, smoothed to about the images' resolution (``mask_smoothing``, 1 A),
shifts the phase by more than ``mask_phase_threshold`` (pi/12 for gold, the study's rule;
pi/30 for CdSe), with holes filled; computed on the simulation grid and binned to detector
pixels (a pixel is in the mask when at least half of it is). Without the smoothing, the
threshold keeps the atom columns and drops the gaps between them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from ase import Atoms
from scipy import ndimage

from lightning_synth.generators.base import stable_seed
from lightning_synth.generators.hrtem.ctf import Optics, contrast_transfer, image_intensity
from lightning_synth.generators.hrtem.detector import (
    apply_mtf,
    bin_pixels,
    dose_noise,
    flat_field,
    gaussian_blur,
    hot_pixels,
    median_filter,
    readout_noise,
)
from lightning_synth.generators.hrtem.multislice import multislice
from lightning_synth.generators.hrtem.optics import interaction_constant
from lightning_synth.generators.hrtem.parametrizations import PARAMETRIZATIONS, Parametrization
from lightning_synth.generators.hrtem.potentials import projected_potential_slices, slice_count
from lightning_synth.generators.hrtem.structures import (
    CUBIC_ZONE_AXES,
    DECAHEDRON_ZONE_AXES,
    HEXAGONAL_ZONE_AXES,
    ICOSAHEDRON_ZONE_AXES,
    WURTZITE_CDSE,
    amorphous_carbon,
    decahedral_particle,
    fcc_lattice_constant,
    fcc_particle,
    icosahedral_particle,
    orient,
    wurtzite_particle,
)

#: The particle shapes of fcc metals: single crystals (with planar defects) and the two
#: multiply twinned particles of Au and Ag at a few nanometres.
SHAPES: tuple[str, ...] = ("sphere", "wulff", "decahedron", "icosahedron")

FidelityTier = Literal["basic", "thermal", "aberrations", "plasmon", "full"]
FIDELITY_TIERS: tuple[str, ...] = ("basic", "thermal", "aberrations", "plasmon", "full")
ThermalModel = Literal["static", "debye_waller", "frozen_phonon"]
Range = tuple[float, float]

#: Room-temperature rms displacement per direction [A] (from Debye-Waller factors B = 8 pi^2 u^2).
DEFAULT_RMS_DISPLACEMENT: dict[str, float] = {
    "Au": 0.0886,
    "Ag": 0.0930,
    "Pt": 0.0720,
    "Pd": 0.0800,
    "Cu": 0.0850,
    "Cd": 0.1150,
    "Se": 0.1000,
    "C": 0.0800,
}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything a simulated sample depends on besides its seed; ranges are sampled uniformly.

    Args:
        detector_pixels: Image side in detector pixels.
        detector_pixel_size: Detector pixel [A] (0.2 in the study).
        sampling: Simulation sampling [A]; ``detector_pixel_size`` must be a whole multiple
            (0.1 for speed, 0.05 for fidelity). Several values: one is drawn per image (a
            robustness knob: codes and users simulate at different samplings).
        slice_thickness: Multislice slice thickness [A], or a range drawn per image (a
            robustness knob).
        energy: Electron energy [eV].
        element: fcc metal of the particles (``"Au"``, ``"Ag"``, ...), or ``"CdSe"`` for
            wurtzite CdSe spheres (the study's second material; ``shapes`` and planar defects
            apply to fcc particles only).
        lattice_constant: The fcc lattice constant [A]; ASE's reference by default.
        particle_diameter: Particle diameter range [A].
        particles: Range (inclusive) of the number of particles per field; a particle that
            finds no room beside the others is left out.
        shapes: Particle shapes to draw from: single crystals (``"sphere"``, ``"wulff"``: a
            truncated octahedron) with planar defects, or multiply twinned particles
            (``"decahedron"``: Ino's; ``"icosahedron"``: Mackay's) of as many atoms as a
            sphere of the drawn diameter, turned onto their five-, three- or two-fold axes
            at ``zone_axis_share``.
        max_planar_defects: Up to this many twins or stacking faults per single-crystal
            particle.
        zone_axis_share: Share of particles turned onto a low-index zone axis.
        carbon_thickness: Amorphous carbon film thickness range [A].
        carbon_density: Carbon number density [atoms / A^3].
        fidelity: Fidelity tier (see the module docs).
        thermal: Thermal model; by default ``frozen_phonon`` from the ``thermal`` tier on,
            else ``static``.
        aberrations: Residual aberrations and partial coherence; by default from the tier.
        plasmon: Plasmon background; by default from the tier.
        mtf: Detector MTF; by default from the tier.
        frozen_phonons: Number of frozen-phonon configurations, or a range (inclusive)
            drawn per image (a robustness knob).
        rms_displacement: rms thermal displacement per element [A].
        defocus: Defocus range [A] (-50..+50 nm in the study).
        cs: Spherical aberration range [A].
        astigmatism: Two-fold astigmatism magnitude range [A].
        coma: Axial coma magnitude range [A].
        three_fold_astigmatism: Three-fold astigmatism magnitude range [A].
        focal_spread: Defocus-spread (standard deviation) range [A].
        illumination_spread: Illumination-angle spread (standard deviation) range [mrad].
        aperture: Objective aperture semi-angle [mrad], or None.
        plasmon_mean_free_path: Mean free path for plasmon excitation [A].
        plasmon_defocus_spread: Chromatic defocus spread of plasmon-loss electrons [A].
        plasmon_blur: Blur of the plasmon image [A].
        mtf_half_frequency: Range of the MTF's half-contrast frequency [cycles / pixel].
        dose: Electron dose range [e / A^2] for Poisson noise; None for noiseless images.
        dose_distribution: How an image's dose is drawn from ``dose``: ``"uniform"``, or
            ``"log_uniform"`` (uniform in log dose: as many images between 100 and 200 e/A^2
            as between 600 and 1200, where the noise's relative size halves likewise).
        parametrizations: Scattering-factor parametrizations, one drawn per image
            (``"kirkland"``, ``"lobato"``): they differ between simulation codes.
        readout_noise: Range of the detector's Gaussian read-out noise [electrons rms per
            pixel], added after the dose noise (needs ``dose``).
        flat_field: Range of the standard deviation of a smooth gain pattern (relative; 0.05
            is 5%), applied before the noise.
        hot_pixels: Range of the fraction of pixels set to 3-30 times the mean (outliers).
        median_filter: Apply a 3 x 3 median filter after the noise.
        mask_phase_threshold: Phase shift [rad] above which a pixel belongs to a particle;
            None: pi/12 (the study's rule, for gold and other heavy metals), pi/30 for CdSe,
            whose lighter, less dense crystal shifts the phase about half as much (pi/30
            keeps the same share of a CdSe sphere's projected disk as pi/12 of a gold
            sphere's: 79% and 86% at 3 and 4 nm).
        mask_smoothing: Standard deviation [A] of the Gaussian that smooths the particle's
            projected phase before the threshold (about the images' resolution); 0 applies the
            threshold to the raw phase, which leaves gaps between atom columns.
    """

    detector_pixels: int = 256
    detector_pixel_size: float = 0.2
    sampling: float | tuple[float, ...] = 0.1
    slice_thickness: float | Range = 2.0
    energy: float = 300e3
    element: str = "Au"
    lattice_constant: float | None = None
    particle_diameter: Range = (20.0, 40.0)
    particles: tuple[int, int] = (1, 1)
    shapes: tuple[str, ...] = ("sphere", "wulff")
    max_planar_defects: int = 3
    zone_axis_share: float = 0.5
    carbon_thickness: Range = (20.0, 80.0)
    carbon_density: float = 0.110
    fidelity: FidelityTier = "full"
    thermal: ThermalModel | None = None
    aberrations: bool | None = None
    plasmon: bool | None = None
    mtf: bool | None = None
    frozen_phonons: int | tuple[int, int] = 8
    rms_displacement: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_RMS_DISPLACEMENT)
    )
    defocus: Range = (-500.0, 500.0)
    cs: Range = (-2.0e5, 2.0e5)
    astigmatism: Range = (0.0, 50.0)
    coma: Range = (0.0, 500.0)
    three_fold_astigmatism: Range = (0.0, 500.0)
    focal_spread: Range = (20.0, 40.0)
    illumination_spread: Range = (0.05, 0.2)
    aperture: float | None = None
    plasmon_mean_free_path: float = 1500.0
    plasmon_defocus_spread: float = 750.0
    plasmon_blur: float = 1.0
    mtf_half_frequency: Range = (0.25, 0.5)
    dose: Range | None = (100.0, 1200.0)
    dose_distribution: Literal["uniform", "log_uniform"] = "uniform"
    parametrizations: tuple[str, ...] = ("kirkland",)
    readout_noise: Range = (0.0, 0.0)
    flat_field: Range = (0.0, 0.0)
    hot_pixels: Range = (0.0, 0.0)
    median_filter: bool = False
    mask_phase_threshold: float | None = None
    mask_smoothing: float = 1.0

    #: Settings added after caches were rendered; at their defaults they leave them valid.
    LATER_SETTINGS: ClassVar[tuple[str, ...]] = ("dose_distribution",)

    def __post_init__(self) -> None:
        if self.fidelity not in FIDELITY_TIERS:
            msg = f"fidelity must be one of {FIDELITY_TIERS}, got {self.fidelity!r}"
            raise ValueError(msg)
        for item in fields(self):
            value = getattr(self, item.name)
            numbers = value if isinstance(value, tuple) else (value,)
            if item.name not in (
                "element",
                "shapes",
                "fidelity",
                "thermal",
                "parametrizations",
                "dose_distribution",
            ) and any(isinstance(v, str) for v in numbers):
                msg = f"{item.name} must be a number or a range of numbers, got {value!r}"
                raise TypeError(msg)
        for name in (
            "detector_pixel_size",
            "sampling",
            "slice_thickness",
            "energy",
            "carbon_density",
            "plasmon_mean_free_path",
        ):
            value = getattr(self, name)
            numbers = _choices(value)
            if not numbers or not all(math.isfinite(v) and v > 0 for v in numbers):
                msg = f"{name} must be a finite number > 0, got {value!r}"
                raise ValueError(msg)
        if isinstance(self.slice_thickness, tuple) and len(self.slice_thickness) != 2:
            msg = (
                "slice_thickness must be a number or a range (low, high), got "
                f"{self.slice_thickness}"
            )
            raise ValueError(msg)
        if self.dose is not None and not self.dose[0] > 0:
            msg = f"dose must be a range of positive doses [e / A^2] (or None), got {self.dose}"
            raise ValueError(msg)
        if self.dose_distribution not in ("uniform", "log_uniform"):
            msg = (
                "dose_distribution must be 'uniform' or 'log_uniform', got "
                f"{self.dose_distribution!r}"
            )
            raise ValueError(msg)
        if self.element != "CdSe":
            fcc_lattice_constant(self.element)  # an fcc metal, or a clear error
        if self.lattice_constant is not None and not self.lattice_constant > 0:
            msg = f"lattice_constant must be positive (or None), got {self.lattice_constant!r}"
            raise ValueError(msg)
        if not 0 <= self.zone_axis_share <= 1 or self.mask_smoothing < 0:
            msg = (
                f"zone_axis_share must be in [0, 1] and mask_smoothing >= 0, got "
                f"{self.zone_axis_share} and {self.mask_smoothing}"
            )
            raise ValueError(msg)
        for sampling in _choices(self.sampling):
            ratio = self.detector_pixel_size / sampling
            if abs(ratio - round(ratio)) > 1e-6 or round(ratio) < 1:
                msg = (
                    f"detector_pixel_size ({self.detector_pixel_size}) must be a whole multiple "
                    f"of sampling (of each value), got {self.sampling}"
                )
                raise ValueError(msg)
        if self.detector_pixels < 8:
            msg = f"detector_pixels must be >= 8, got {self.detector_pixels}"
            raise ValueError(msg)
        phonons = _choices(self.frozen_phonons)
        ranged = isinstance(self.frozen_phonons, tuple)
        if (ranged and len(phonons) != 2) or min(phonons) < 1 or phonons[0] > phonons[-1]:
            msg = (
                "frozen_phonons must be >= 1, or a range (low, high) of them, got "
                f"{self.frozen_phonons}"
            )
            raise ValueError(msg)
        if not 1 <= self.particles[0] <= self.particles[1]:
            msg = (
                f"particles must be a range (low, high) with 1 <= low <= high, got {self.particles}"
            )
            raise ValueError(msg)
        if not self.parametrizations or not set(self.parametrizations) <= set(PARAMETRIZATIONS):
            msg = (
                f"parametrizations must be drawn from {PARAMETRIZATIONS}, got "
                f"{self.parametrizations!r}"
            )
            raise ValueError(msg)
        if self.readout_noise[1] > 0 and self.dose is None:
            msg = "readout_noise needs a dose: read-out noise is in electrons per pixel"
            raise ValueError(msg)
        if min(self.readout_noise[0], self.flat_field[0], self.hot_pixels[0]) < 0 or not (
            self.hot_pixels[1] < 1
        ):
            msg = (
                "readout_noise, flat_field and hot_pixels must be ranges >= 0 (hot_pixels "
                f"below 1), got {self.readout_noise}, {self.flat_field}, {self.hot_pixels}"
            )
            raise ValueError(msg)
        if not set(self.shapes) <= set(SHAPES) or not self.shapes:
            msg = f"shapes must be drawn from {SHAPES}, got {self.shapes}"
            raise ValueError(msg)
        for item in fields(self):
            value = getattr(self, item.name)
            is_range = isinstance(value, tuple) and len(value) == 2 and item.name != "sampling"
            if is_range and all(isinstance(v, float | int) for v in value):
                low, high = value
                if low > high or not (math.isfinite(low) and math.isfinite(high)):
                    msg = f"{item.name} must be a range (low, high) with low <= high, got {value}"
                    raise ValueError(msg)
        if self.particle_diameter[0] <= 0 or self.carbon_thickness[0] < 0:
            msg = "particle_diameter must be positive and carbon_thickness >= 0"
            raise ValueError(msg)
        if self.particle_diameter[1] > self.extent:
            msg = (
                f"particle_diameter up to {self.particle_diameter[1]} A does not fit the field "
                f"of {self.extent:.1f} A; raise detector_pixels or detector_pixel_size"
            )
            raise ValueError(msg)

    @property
    def extent(self) -> float:
        """Field of view [A]."""
        return self.detector_pixels * self.detector_pixel_size

    @property
    def phase_threshold(self) -> float:
        """The mask's phase threshold in effect [rad] (see ``mask_phase_threshold``)."""
        if self.mask_phase_threshold is not None:
            return self.mask_phase_threshold
        return math.pi / 30 if self.element == "CdSe" else math.pi / 12

    @property
    def atomic_volume(self) -> float:
        """Volume per atom of the particles' crystal [A^3] (for the plasmon thickness)."""
        if self.element == "CdSe":  # wurtzite: 4 atoms per cell of sqrt(3)/2 a^2 c
            return math.sqrt(3) / 2 * WURTZITE_CDSE["a"] ** 2 * WURTZITE_CDSE["c"] / 4
        # Four atoms per cubic fcc cell.
        return (self.lattice_constant or fcc_lattice_constant(self.element)) ** 3 / 4

    @property
    def gpts(self) -> int:
        """Simulation grid points per side (of one image's sampling, see :meth:`for_image`)."""
        return round(self.extent / self._one("sampling"))

    @property
    def binning(self) -> int:
        """Simulation pixels per detector pixel, per side (of one image's sampling)."""
        return round(self.detector_pixel_size / self._one("sampling"))

    @property
    def draws_grid(self) -> bool:
        """Whether sampling, slice thickness or phonon count is drawn per image."""
        return any(
            isinstance(getattr(self, name), tuple)
            for name in ("sampling", "slice_thickness", "frozen_phonons")
        )

    def for_image(self, knobs: np.random.Generator) -> SimulationConfig:
        """This config with one image's sampling, slice thickness and phonon count.

        Each one given as several values is drawn from ``knobs`` (the robustness knobs'
        stream), in that order; one given as a single value is kept and draws nothing.
        """
        if not self.draws_grid:
            return self
        changes: dict[str, Any] = {}
        if isinstance(self.sampling, tuple):
            changes["sampling"] = float(self.sampling[int(knobs.integers(len(self.sampling)))])
        if isinstance(self.slice_thickness, tuple):
            changes["slice_thickness"] = _uniform(knobs, self.slice_thickness)
        if isinstance(self.frozen_phonons, tuple):
            low, high = self.frozen_phonons
            changes["frozen_phonons"] = int(knobs.integers(low, high + 1))
        return replace(self, **changes)

    def _one(self, name: str) -> Any:
        value = getattr(self, name)
        if isinstance(value, tuple):
            if len(value) == 1:
                return value[0]
            msg = f"{name} is drawn per image ({value}); take one image's with for_image()"
            raise ValueError(msg)
        return value

    def _tier_at_least(self, tier: str) -> bool:
        return FIDELITY_TIERS.index(self.fidelity) >= FIDELITY_TIERS.index(tier)

    @property
    def thermal_model(self) -> ThermalModel:
        """The thermal model in effect."""
        if self.thermal is not None:
            return self.thermal
        return "frozen_phonon" if self._tier_at_least("thermal") else "static"

    @property
    def uses_aberrations(self) -> bool:
        """Whether residual aberrations and partial coherence are in effect."""
        return (
            self.aberrations if self.aberrations is not None else self._tier_at_least("aberrations")
        )

    @property
    def uses_plasmon(self) -> bool:
        """Whether the plasmon background is in effect."""
        return self.plasmon if self.plasmon is not None else self._tier_at_least("plasmon")

    @property
    def uses_mtf(self) -> bool:
        """Whether the detector MTF is in effect."""
        return self.mtf if self.mtf is not None else self._tier_at_least("full")

    def with_fidelity(self, fidelity: FidelityTier) -> SimulationConfig:
        """A copy at another tier, with the per-ingredient overrides cleared."""
        return replace(
            self, fidelity=fidelity, thermal=None, aberrations=None, plasmon=None, mtf=None
        )


def _choices(value: Any) -> tuple[Any, ...]:
    return value if isinstance(value, tuple) else (value,)


def _uniform(rng: np.random.Generator, bounds: Range) -> float:
    return float(rng.uniform(bounds[0], bounds[1])) if bounds[1] > bounds[0] else float(bounds[0])


class HRTEMSimulator:
    """Simulates HRTEM samples (image, mask, metadata) from seeds.

    The same ``(config, seed)`` gives the same sample on any worker or rank (and on CPU and
    GPU up to floating-point rounding).

    Args:
        config: What to simulate.
        device: Torch device for the potentials, multislice and optics; CUDA when available
            by default.

    Example:
        >>> config = SimulationConfig(detector_pixels=80, particle_diameter=(16.0, 16.0),
        ...                           carbon_thickness=(6.0, 6.0), frozen_phonons=2)
        >>> sample = HRTEMSimulator(config, device="cpu").simulate(seed=3)
        >>> sample["image"].shape, sample["mask"].shape, int(sample["mask"].sum()) > 0
        (torch.Size([1, 80, 80]), torch.Size([80, 80]), True)

        As a generator (``simulator(seed, index)``) it serves a
        :class:`~lightning_synth.data.GeneratedDataset`.
    """

    def __init__(
        self, config: SimulationConfig | None = None, device: str | torch.device | None = None
    ) -> None:
        self.config = config or SimulationConfig()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))

    # ------------------------------------------------------------------ drawing
    def draw_optics(self, rng: np.random.Generator) -> Optics:
        """Optics for one image, drawn from the config's ranges (tier-dependent)."""
        c = self.config
        defocus = _uniform(rng, c.defocus)
        if not c.uses_aberrations:
            return Optics(energy=c.energy, defocus=defocus, aperture=c.aperture)
        return Optics(
            energy=c.energy,
            defocus=defocus,
            cs=_uniform(rng, c.cs),
            astigmatism=_uniform(rng, c.astigmatism),
            astigmatism_angle=float(rng.uniform(0, math.pi)),
            coma=_uniform(rng, c.coma),
            coma_angle=float(rng.uniform(0, 2 * math.pi)),
            three_fold_astigmatism=_uniform(rng, c.three_fold_astigmatism),
            three_fold_angle=float(rng.uniform(0, 2 * math.pi / 3)),
            aperture=c.aperture,
            focal_spread=_uniform(rng, c.focal_spread),
            illumination_spread=_uniform(rng, c.illumination_spread),
        )

    def draw_specimen(
        self, rng: np.random.Generator
    ) -> tuple[list[Atoms], Atoms, list[dict[str, Any]]]:
        """Particles (placed in the field, on top of the film) and the carbon film."""
        c = self.config
        extent = c.extent
        thickness = _uniform(rng, c.carbon_thickness)
        carbon = (
            amorphous_carbon((extent, extent), thickness, rng, density=c.carbon_density)
            if thickness > 0
            else Atoms(cell=[extent, extent, 0.0])
        )
        count = int(rng.integers(c.particles[0], c.particles[1] + 1))
        particles, records = [], []
        centres: list[tuple[np.ndarray, float]] = []
        for _ in range(count):
            diameter = _uniform(rng, c.particle_diameter)
            radius = diameter / 2
            defects = int(rng.integers(0, c.max_planar_defects + 1))
            twins = int(rng.integers(0, defects + 1))
            shape = str(rng.choice(list(c.shapes)))
            if c.element == "CdSe":  # wurtzite spheres, c along a drawn zone axis
                shape, twins, defects = "sphere", 0, 0
                particle = wurtzite_particle(radius)
                axes: Any = HEXAGONAL_ZONE_AXES
            elif shape in ("decahedron", "icosahedron"):  # twinned by construction
                twins, defects = 0, 0
                particle, axes = self._twinned_particle(shape, radius, rng)
            else:
                particle = fcc_particle(
                    radius,
                    c.element,
                    c.lattice_constant,
                    shape=shape,  # type: ignore[arg-type]
                    twins=twins,
                    stacking_faults=defects - twins,
                    rng=rng,
                )
                axes = CUBIC_ZONE_AXES
            particle, orientation = orient(
                particle, rng, zone_axis_share=c.zone_axis_share, zone_axes=axes
            )
            twinned = shape in ("decahedron", "icosahedron")
            if twinned:  # placed by their projected reach, single crystals by ``radius``
                reach = float(np.linalg.norm(particle.positions[:, :2], axis=1).max())
                radius = max(radius, reach)
            # Inside the field and apart from the others. The first particle goes to the
            # centre when it does not fit elsewhere; a later one that finds no room is left
            # out (particles at one height must not overlap).
            centre = np.full(2, extent / 2) if not centres else None
            for _attempt in range(50):
                low, high = min(radius, extent / 2), max(extent - radius, extent / 2)
                candidate = rng.uniform(low, high, size=2)
                if all(np.linalg.norm(candidate - other) > radius + r for other, r in centres):
                    centre = candidate
                    break
            if centre is None:
                continue
            centres.append((centre, radius))
            # On the film, 1 A above it (a sphere's lowest atom is ``radius`` below its centre).
            bottom = float(particle.positions[:, 2].min()) if twinned else -radius
            particle.positions += [centre[0], centre[1], thickness + 1.0 - bottom]
            particles.append(particle)
            records.append(
                {
                    "diameter": diameter,
                    "shape": shape,
                    "twins": twins,
                    "stacking_faults": defects - twins,
                    "atoms": len(particle),
                    "centre": [float(v) for v in centre],
                    **orientation,
                }
            )
        return particles, carbon, records

    def _twinned_particle(
        self, shape: str, radius: float, rng: np.random.Generator
    ) -> tuple[Atoms, Any]:
        """A decahedron or icosahedron of ``radius``'s atom count, and its zone axes.

        Their corners reach past the sphere of the same volume; one that would reach past
        the field's half-width is built again, smaller, so no atom wraps around the field.
        """
        c = self.config
        truncation = float(rng.uniform(0.65, 0.9))  # drawn for every multiply twinned one
        limit = c.extent / 2 - 1.0
        for _attempt in range(5):
            if shape == "decahedron":
                particle = decahedral_particle(
                    radius, c.element, c.lattice_constant, truncation=truncation
                )
            else:
                particle = icosahedral_particle(radius, c.element, c.lattice_constant)
            reach = float(np.linalg.norm(particle.positions, axis=1).max())
            if reach <= limit:
                break
            radius *= 0.95 * limit / reach
        axes = DECAHEDRON_ZONE_AXES if shape == "decahedron" else ICOSAHEDRON_ZONE_AXES
        return particle, axes

    # ------------------------------------------------------------------ physics
    def _potential(
        self,
        atoms: Atoms,
        num_slices: int,
        smear: bool,
        parametrization: Parametrization = "kirkland",
    ) -> torch.Tensor:
        c = self.config
        rms = None
        if smear:
            rms = {
                int(number): c.rms_displacement.get(symbol, 0.0)
                for number, symbol in zip(atoms.numbers, atoms.get_chemical_symbols(), strict=True)
            }
        return projected_potential_slices(
            torch.as_tensor(atoms.positions, device=self.device),
            torch.as_tensor(atoms.numbers, device=self.device),
            (c.extent, c.extent),
            (c.gpts, c.gpts),
            c._one("slice_thickness"),
            num_slices=num_slices,
            rms_displacements=rms,
            parametrization=parametrization,
        )

    def _displaced(self, atoms: Atoms, rng: np.random.Generator, floor: float = 0.0) -> Atoms:
        rms = np.array(
            [self.config.rms_displacement.get(s, 0.0) for s in atoms.get_chemical_symbols()]
        )
        moved = atoms.copy()
        moved.positions = atoms.positions + rng.normal(size=atoms.positions.shape) * rms[:, None]
        moved.positions[:, 2] = np.clip(moved.positions[:, 2], floor, None)
        return moved

    def mask_from_particles(
        self, particles: list[Atoms], parametrization: Parametrization = "kirkland"
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Semantic mask (H, W) int64 and instance masks (N, H, W) bool at detector pixels."""
        c = self.config
        sigma = interaction_constant(c.energy)
        instances = []
        for particle in particles:
            flat = particle.copy()
            flat.positions[:, 2] = 0.0  # one slice: the whole projection
            phase = sigma * self._potential(flat, 1, False, parametrization)[0]
            phase = gaussian_blur(phase, c.mask_smoothing / c._one("sampling"))
            inside = torch.from_numpy(
                ndimage.binary_fill_holes((phase > c.phase_threshold).cpu().numpy())
            ).to(device=phase.device, dtype=torch.float32)
            instances.append(bin_pixels(inside, c.binning) >= 0.5)
        stacked = (
            torch.stack(instances)
            if instances
            else torch.zeros(
                (0, c.detector_pixels, c.detector_pixels), dtype=torch.bool, device=self.device
            )
        )
        return stacked.any(dim=0).long(), stacked

    def image_from_specimen(
        self,
        particles: list[Atoms],
        carbon: Atoms,
        optics: Optics,
        rng: np.random.Generator,
        parametrization: Parametrization = "kirkland",
    ) -> torch.Tensor:
        """Image intensity on the simulation grid (1 = vacuum), before the detector."""
        c = self.config
        everything = carbon.copy()
        for particle in particles:
            everything += particle
        step: float = c._one("slice_thickness")
        num_slices = slice_count(torch.as_tensor(everything.positions), step) + 1
        thermal = c.thermal_model
        background = (
            self._potential(carbon, num_slices, thermal != "static", parametrization)
            if len(carbon)
            else torch.zeros((num_slices, c.gpts, c.gpts), device=self.device)
        )
        configurations = c._one("frozen_phonons") if thermal == "frozen_phonon" else 1
        dx: float = c._one("sampling")
        sampling = (dx, dx)
        plasmon_optics = replace(
            optics, focal_spread=math.hypot(optics.focal_spread, c.plasmon_defocus_spread)
        )
        # Slices below every particle atom hold only the static film, so the wave through them
        # is the same for every phonon configuration: propagate it once.
        lowest = min((float(p.positions[:, 2].min()) for p in particles), default=math.inf)
        margin = 6 * max(c.rms_displacement.values(), default=0.0)
        split = min(num_slices, max(0, math.floor((lowest - margin) / step)))
        incident = None
        if split > 0:
            incident = multislice(background[:split], c.energy, sampling, step)
        floor = split * step
        gpts = (c.gpts, c.gpts)
        transfer = contrast_transfer(optics, gpts, sampling, device=self.device)
        plasmon_transfer = (
            contrast_transfer(plasmon_optics, gpts, sampling, device=self.device)
            if c.uses_plasmon
            else None
        )
        # Every frozen-phonon configuration's potential, then one batched multislice over
        # them (the configurations are the batch dimension).
        potentials = []
        for _ in range(configurations):
            potential = background[split:]
            for particle in particles:
                moved = (
                    self._displaced(particle, rng, floor)
                    if thermal == "frozen_phonon"
                    else particle
                )
                potential = (
                    potential
                    + self._potential(
                        moved, num_slices, thermal == "debye_waller", parametrization
                    )[split:]
                )
            potentials.append(potential)
        stacked = torch.stack(potentials)  # (configurations, slices, gpts, gpts)
        exit_waves = (
            multislice(stacked, c.energy, sampling, step, wave=incident)
            if stacked.shape[1]
            else incident
        )
        assert exit_waves is not None
        elastic = image_intensity(exit_waves, None, sampling, transfer)
        elastic = elastic.mean(0) if elastic.ndim == 3 else elastic
        inelastic = torch.zeros_like(elastic)
        if plasmon_transfer is not None:
            inelastic = image_intensity(exit_waves, None, sampling, plasmon_transfer)
            inelastic = inelastic.mean(0) if inelastic.ndim == 3 else inelastic
        if not c.uses_plasmon:
            return elastic
        volume = sum(len(p) for p in particles) * c.atomic_volume
        mean_thickness = float(carbon.cell.lengths()[2]) + volume / c.extent**2
        share = 1.0 - math.exp(-mean_thickness / c.plasmon_mean_free_path)
        inelastic = gaussian_blur(inelastic, c.plasmon_blur / dx)
        return (1 - share) * elastic + share * inelastic

    def detect(
        self,
        intensity: torch.Tensor,
        rng: np.random.Generator,
        generator: torch.Generator,
        knobs: np.random.Generator | None = None,
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Bin to detector pixels, then MTF, gain, noise and outliers as configured.

        The order: MTF, gain pattern (``flat_field``), dose noise, read-out noise, hot pixels,
        median filter. ``knobs`` draws the robustness knobs (``flat_field``,
        ``readout_noise``, ``hot_pixels``) apart from ``rng``, so that switching them on
        leaves every other draw of a seed as it was; by default a stream spawned from
        ``rng``'s seed.
        """
        c = self.config
        image = bin_pixels(intensity, c.binning)
        record: dict[str, Any] = {}
        if knobs is None:
            knobs = self._knobs(None, rng)
        noise = torch.Generator().manual_seed(int(knobs.integers(2**62)))
        if c.uses_mtf:
            record["mtf_half_frequency"] = _uniform(rng, c.mtf_half_frequency)
            image = apply_mtf(image, record["mtf_half_frequency"])
        if c.flat_field[1] > 0:
            record["flat_field"] = _uniform(knobs, c.flat_field)
            correlation = float(knobs.uniform(0.1, 0.5)) * c.detector_pixels
            shape = (image.shape[-2], image.shape[-1])
            gain = flat_field(shape, record["flat_field"], correlation, noise)
            image = image * gain.to(image.device)
        if c.dose is not None:
            if c.dose_distribution == "log_uniform":  # one draw either way: same stream
                low, high = math.log(c.dose[0]), math.log(c.dose[1])
                record["dose"] = math.exp(_uniform(rng, (low, high)))
            else:
                record["dose"] = _uniform(rng, c.dose)
            image = dose_noise(image.cpu(), record["dose"], c.detector_pixel_size, generator).to(
                image.device
            )
            if c.readout_noise[1] > 0:
                record["readout_noise"] = _uniform(knobs, c.readout_noise)
                per_electron = 1.0 / (record["dose"] * c.detector_pixel_size**2)
                image = readout_noise(
                    image.cpu(), record["readout_noise"] * per_electron, noise
                ).to(image.device)
        if c.hot_pixels[1] > 0:
            record["hot_pixels"] = _uniform(knobs, c.hot_pixels)
            image = hot_pixels(image.cpu(), record["hot_pixels"], noise).to(image.device)
        if c.median_filter:
            image = median_filter(image)
        return image.to(torch.float32), record

    # ------------------------------------------------------------------ samples
    def __call__(self, seed: int, index: int) -> dict[str, Any]:
        """Sample ``index`` of the set seeded by ``seed`` (the generator protocol).

        It is :meth:`simulate` of a seed derived from both, so sets of different seeds share
        no sample.
        """
        return self.simulate(stable_seed(seed, "hrtem", str(index)))

    def simulate(self, seed: int) -> dict[str, Any]:
        """One sample from ``seed``.

        Returns:
            ``image`` (1, H, W) float32, ``mask`` (H, W) int64, ``instance_masks`` (N, H, W)
            bool, and ``meta`` (seed, specimen, optics, detector settings).
        """
        rng = np.random.default_rng(seed)
        generator = torch.Generator().manual_seed(int(rng.integers(2**62)))
        particles, carbon, specimen = self.draw_specimen(rng)
        optics = self.draw_optics(rng)
        return self.simulate_specimen(
            particles, carbon, optics, rng, generator, seed=seed, specimen=specimen
        )

    def _knobs(self, seed: int | None, rng: np.random.Generator) -> np.random.Generator:
        """The robustness knobs' own stream (see :meth:`detect`)."""
        if seed is not None:
            return np.random.default_rng([seed, 1])
        sequence = getattr(rng.bit_generator, "seed_seq", None)
        if isinstance(sequence, np.random.SeedSequence):
            return np.random.default_rng(sequence.spawn(1)[0])
        return np.random.default_rng(int(rng.integers(2**62)))

    def simulate_specimen(
        self,
        particles: list[Atoms],
        carbon: Atoms,
        optics: Optics,
        rng: np.random.Generator,
        generator: torch.Generator,
        seed: int | None = None,
        specimen: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """A sample from a given specimen and optics (e.g. the user's own structures)."""
        knobs = self._knobs(seed, rng)
        choices = self.config.parametrizations
        parametrization: Any = choices[int(knobs.integers(len(choices)))]
        config = self.config.for_image(knobs)
        simulator = self if config is self.config else HRTEMSimulator(config, self.device)
        intensity = simulator.image_from_specimen(particles, carbon, optics, rng, parametrization)
        image, detector = simulator.detect(intensity, rng, generator, knobs)
        mask, instances = simulator.mask_from_particles(particles, parametrization)
        meta = {
            "seed": seed,
            "fidelity": self.config.fidelity,
            "parametrization": parametrization,
            "sampling": config.sampling,
            "slice_thickness": config.slice_thickness,
            "frozen_phonons": config.frozen_phonons,
            "thermal": self.config.thermal_model,
            "plasmon": self.config.uses_plasmon,
            "particles": specimen or [{"atoms": len(p)} for p in particles],
            "carbon_thickness": float(carbon.cell.lengths()[2]) if len(carbon) else 0.0,
            "optics": asdict(optics),
            "detector": detector,
        }
        return {
            "image": image[None].cpu(),
            "mask": mask.cpu(),
            "instance_masks": instances.cpu(),
            "meta": meta,
        }
