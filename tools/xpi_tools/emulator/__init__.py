"""An emulator of commercial Amazon Bedrock, driven by stock boto3 clients through ``endpoint_url``.

    from xpi_tools.emulator import AccessKey, BedrockEmulator, EmulatorConfig

    with BedrockEmulator(EmulatorConfig(access_keys=[AccessKey("AKIAEXAMPLE", "secret")])) as emu:
        runtime = boto3.client("bedrock-runtime", endpoint_url=emu.url, region_name="us-east-1", ...)
        emu.control.inject_fault("ThrottlingException", count=1)

See docs/emulator.md.
"""

from xpi_tools.emulator.client import Counters, EmulatorControl, EmulatorControlError, Fault, UsageCounters
from xpi_tools.emulator.config import (
    AccessKey,
    ApiKey,
    BatchSettings,
    EmulatorConfig,
    Latency,
    Quota,
    RolesAnywhere,
)
from xpi_tools.emulator.custom import CustomModel
from xpi_tools.emulator.server import BedrockEmulator

__all__ = [
    "AccessKey",
    "ApiKey",
    "BatchSettings",
    "BedrockEmulator",
    "Counters",
    "CustomModel",
    "EmulatorConfig",
    "EmulatorControl",
    "EmulatorControlError",
    "Fault",
    "Latency",
    "Quota",
    "RolesAnywhere",
    "UsageCounters",
]
