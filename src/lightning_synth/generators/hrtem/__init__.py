"""HRTEM image simulation: potentials, multislice and optics, in torch (CPU or CUDA)."""

from lightning_synth.generators.hrtem.ctf import (
    Optics,
    aberration_function,
    contrast_transfer,
    image_intensity,
    image_wave,
)
from lightning_synth.generators.hrtem.multislice import multislice, transmission_functions
from lightning_synth.generators.hrtem.optics import (
    antialias_aperture,
    fresnel_propagator,
    interaction_constant,
    relativistic_wavelength,
    spatial_frequencies,
)
from lightning_synth.generators.hrtem.parametrizations import element_symbol, scattering_factor
from lightning_synth.generators.hrtem.potentials import projected_potential_slices, slice_count
from lightning_synth.generators.hrtem.simulator import (
    FIDELITY_TIERS,
    HRTEMSimulator,
    SimulationConfig,
)
from lightning_synth.generators.hrtem.structures import (
    amorphous_carbon,
    decahedral_particle,
    fcc_particle,
    icosahedral_particle,
    orient,
    wurtzite_particle,
)

__all__ = [
    "FIDELITY_TIERS",
    "HRTEMSimulator",
    "Optics",
    "SimulationConfig",
    "aberration_function",
    "amorphous_carbon",
    "antialias_aperture",
    "contrast_transfer",
    "decahedral_particle",
    "element_symbol",
    "fcc_particle",
    "fresnel_propagator",
    "icosahedral_particle",
    "image_intensity",
    "image_wave",
    "interaction_constant",
    "multislice",
    "orient",
    "projected_potential_slices",
    "relativistic_wavelength",
    "scattering_factor",
    "slice_count",
    "spatial_frequencies",
    "transmission_functions",
    "wurtzite_particle",
]
