"""tap-callcenter: settings, stream discovery and the command-line entry point."""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import io
import json
import logging
import os
import signal
import sys
import threading
import time
import typing as t
from types import FrameType

from jsonschema import Draft7Validator
from singer_sdk import Stream, Tap
from singer_sdk import typing as th
from singer_sdk.configuration._dict_config import parse_environment_config
from singer_sdk.contrib.msgspec import MsgSpecWriter, serialize_jsonl
from singer_sdk.exceptions import ConfigValidationError
from singer_sdk.helpers._classproperty import classproperty
from singer_sdk.helpers.capabilities import PluginCapabilities, TapCapabilities
from singer_sdk.singerlib import SingerMessageType

from tap_callcenter import conpeek, ecss, thulium
from tap_callcenter.errors import (
    CallcenterError,
    collect_secrets,
    install_log_redaction,
    redactor,
)
from tap_callcenter.provider import Provider, secret_keys
from tap_callcenter.settings import (
    GENERAL_SETTINGS,
    TEST_NOW_VARIABLE,
    SyncSettings,
    coerce_number_strings,
    plain_http_warnings,
    semantic_errors,
    unknown_key_errors,
    utc_now,
)
from tap_callcenter.state import check_state, parse_state_text

#: Every provider the tap knows, in the order of the config reference.
PROVIDERS: tuple[Provider, ...] = (conpeek.PROVIDER, thulium.PROVIDER, ecss.PROVIDER)

CONFIG_SCHEMA = th.PropertiesList(
    *GENERAL_SETTINGS, *(provider.config_block() for provider in PROVIDERS)
).to_dict()
CONFIG_SCHEMA["additionalProperties"] = False  # a typo must not silently disable a provider


class WholeMessageWriter(MsgSpecWriter):
    """The SDK's msgspec writer, buffered by the tap, that never leaves half a message
    on stdout.

    Messages are kept in order in the tap's own buffer (stdout may be unbuffered:
    ``PYTHONUNBUFFERED``) and written out at every STATE (so a target sees a STATE only
    with every record before it), when the buffer passes ``FLUSH_BYTES``, at exit (also
    after an error or a stop signal), and at least once a second (a thread checks, so a
    slow stream's records are not held back while the tap waits on the server). The
    SDK's writer makes one system call per record. A stop signal ends the process
    only between two writes (see :func:`stop_for_signal`)."""

    #: Seconds a record may wait in the buffer while later ones are written.
    FLUSH_EVERY = 1.0
    #: Bytes held before they are written regardless.
    FLUSH_BYTES = 256 * 1024

    def __init__(self) -> None:
        super().__init__()
        self._pending = bytearray()
        self._flushed_at = time.monotonic()
        self._extracted_second = -1.0
        self._extracted_at = dt.datetime.now(dt.timezone.utc)
        #: Held while the buffer changes or is written (the ticker writes it too).
        self._lock = threading.RLock()
        self._ticker: threading.Thread | None = None
        _writers.append(self)

    def write_message(self, message: t.Any) -> None:
        self._append(self.format_message(message), message.type == SingerMessageType.STATE)

    def write_record(self, stream: str, record: dict[str, t.Any], version: int | None) -> None:
        """One RECORD as the SDK writes it (same keys, same order), without a message
        object per record; ``time_extracted`` is read once a second."""
        now = time.time()
        if now - self._extracted_second >= 1.0:
            self._extracted_second = now // 1
            self._extracted_at = dt.datetime.fromtimestamp(self._extracted_second, dt.timezone.utc)
        message: dict[str, t.Any] = {"type": "RECORD", "stream": stream, "record": record}
        if version is not None:
            message["version"] = version
        message["time_extracted"] = self._extracted_at
        self._append(serialize_jsonl(message), False)

    def _append(self, line: bytes | bytearray, is_state: bool) -> None:
        with self._lock:
            self._pending += line
            if (
                is_state
                or len(self._pending) > self.FLUSH_BYTES
                or time.monotonic() - self._flushed_at > self.FLUSH_EVERY
            ):
                self.flush()
        if self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="stdout-flush", daemon=True)
            self._ticker.start()

    def flush(self) -> None:
        """Write out every buffered message, whole, in order."""
        with self._lock:
            self._flushed_at = time.monotonic()
            out, pending = sys.stdout.buffer, memoryview(self._pending)
            while pending:  # an unbuffered stdout may take part of it (a signal mid-write)
                written = out.write(pending)
                pending = pending[written if written is not None else 0 :]
            pending.release()
            self._pending.clear()
            sys.stdout.flush()

    def _tick(self) -> None:
        """Write out records that have waited ``FLUSH_EVERY`` (a slow stream)."""
        while True:
            time.sleep(self.FLUSH_EVERY / 4)
            with self._lock:
                if self._pending and time.monotonic() - self._flushed_at >= self.FLUSH_EVERY:
                    with contextlib.suppress(OSError, ValueError):  # stdout closed: exiting
                        self.flush()

    def seal(self) -> None:
        """Write out what the buffer holds and take the lock for good: nothing more is
        written (the process is about to end). Waits for a write under way to finish."""
        self._lock.acquire()
        with contextlib.suppress(OSError, ValueError):
            self.flush()


#: Writers whose buffers are written out at exit, however the process ends.
_writers: list[WholeMessageWriter] = []


@atexit.register
def flush_output() -> None:
    """Write out what every writer still holds (records after the last STATE)."""
    for writer in _writers:
        with contextlib.suppress(OSError, ValueError):
            writer.flush()


_stopping = threading.Lock()


def stop_for_signal(signum: int) -> None:
    """End the process for SIGTERM/SIGINT, from a thread of its own, with 128 + the
    signal number (143 for SIGTERM; the SDK exits 0, so schedulers would record an
    interrupted run as a success).

    The handler runs in the main thread wherever it was interrupted. An exception raised
    there can be lost: inside a finalizer (a generator or a socket freed mid-run) Python
    prints "Exception ignored" and the run carries on, waiting on a server that hangs.
    The thread instead waits for a message being written, writes out every whole message
    still buffered and ends the process, whatever the main thread is doing. No extra
    STATE is written: the stream state may describe a window whose records are not all
    out yet; the last STATE written is safe to resume from (it only ever follows the
    records it covers)."""
    if not _stopping.acquire(blocking=False):
        return  # a second signal: the first one's stop is under way
    stopper = threading.Thread(target=_stop, args=(signum,), name="stop", daemon=False)
    with contextlib.suppress(RuntimeError):  # the interpreter is already shutting down
        stopper.start()


def _stop(signum: int) -> None:
    for writer in _writers:
        writer.seal()
    logging.getLogger("tap-callcenter").error(
        "stopped by %s; the last STATE written is safe to resume from",
        signal.Signals(signum).name,
    )
    logging.shutdown()
    # Not sys.exit: a thread cannot end the process that way, and fetch threads may be
    # waiting on a server that hangs; every message is already written and flushed.
    os._exit(128 + signum)


class TapCallcenter(Tap):
    """Call-detail records, recordings and campaign summaries from call-center APIs."""

    name = "tap-callcenter"
    package_name = "tap-callcenter"
    config_jsonschema = CONFIG_SCHEMA
    #: The SDK's msgspec writer (several times faster), writing whole messages only.
    message_writer_class = WholeMessageWriter
    #: The SDK's list without BATCH: a BATCH message is written after the STATE of the
    #: windows it holds, so a crash between them would checkpoint rows never delivered.
    capabilities: t.ClassVar[list] = [
        TapCapabilities.CATALOG,
        TapCapabilities.STATE,
        TapCapabilities.DISCOVER,
        PluginCapabilities.ABOUT,
        PluginCapabilities.STREAM_MAPS,
        PluginCapabilities.FLATTENING,
        PluginCapabilities.STRUCTURED_LOGGING,
    ]

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        self.settings: SyncSettings
        #: Streams the input catalog sets to FULL_TABLE, in any of the spellings in use
        #: (read here: the SDK keeps only ``forced-replication-method``).
        self.full_table_streams = full_table_streams(kwargs.get("catalog"))
        super().__init__(*args, **kwargs)

    def load_state(self, state: dict[str, t.Any]) -> None:
        """The SDK's state loading, after checking every bookmark can be read."""
        super().load_state(check_state(state))

    @classmethod
    def invoke(cls, *, state: t.IO[str] | None = None, **kwargs: t.Any) -> None:
        """The SDK's sync command, with the state file read and checked first (an empty,
        non-JSON or malformed file is one clear error, not a traceback)."""
        if state is not None:
            parsed = parse_state_text(state.read(), f"the state file {state.name!r}")
            state = io.StringIO(json.dumps(parsed))
        super().invoke(state=state, **kwargs)

    def _handle_termination(self, signum: int, frame: FrameType | None) -> None:
        """SIGTERM/SIGINT: stop within seconds, with 128 + the signal number."""
        stop_for_signal(signum)

    def _validate_config(self, *, raise_errors: bool = True) -> list[str]:
        """Schema validation, then unknown keys and meaning (dates, zones, providers).

        Always strict, also for ``--discover`` (which the SDK runs unvalidated): a typo
        must not silently hide a provider's streams.
        """
        coerce_number_strings(self._config, self.config_jsonschema)
        config = dict(self.config)
        redactor.add(collect_secrets(config, secret_keys(self.config_jsonschema)))
        install_log_redaction()
        # urllib3 warns of each connection it drops or discards; the tap reports what
        # a failed request means itself (one retry line, one final error)
        logging.getLogger("urllib3.connectionpool").setLevel(logging.ERROR)
        schema = self.config_jsonschema
        self.append_builtin_config(schema)
        errors = unknown_key_errors(config, schema)
        for error in Draft7Validator(schema).iter_errors(config):
            if error.validator != "additionalProperties":  # reported above, with a guess
                where = ".".join(str(part) for part in error.path)
                errors.append(f"{where}: {error.message}" if where else error.message)
        errors += semantic_errors(config, PROVIDERS)
        if "batch_config" in config:
            errors = [e for e in errors if "'batch_config'" not in e]
            errors.append(
                "setting 'batch_config': BATCH messages are not supported (a STATE must "
                "never come before the records it covers); remove the setting"
            )
        errors = [redactor.redact(e) for e in errors]
        if errors:
            raise ConfigValidationError("Invalid configuration", errors=errors)
        self.settings = SyncSettings.from_config(config, utc_now())
        for line in plain_http_warnings(config, PROVIDERS):
            self.logger.warning("%s", line)
        if os.environ.get(TEST_NOW_VARIABLE):
            self.logger.warning(
                "%s is set: the tap takes 'now' to be %s (for tests only)",
                TEST_NOW_VARIABLE,
                self.settings.now.isoformat(),
            )
        return errors

    @classproperty
    def _env_var_config(cls) -> dict[str, t.Any]:
        """``--config ENV``: the SDK reads top-level settings (``TAP_CALLCENTER_START_DATE``);
        provider settings come from ``TAP_CALLCENTER_<PROVIDER>_<KEY>`` as in Meltano
        (``TAP_CALLCENTER_THULIUM_PASSWORD``), merged over a whole-block JSON variable."""
        schema = cls.config_jsonschema
        cls.append_builtin_config(schema)
        prefix = cls._env_var_prefix
        config = parse_environment_config(schema, prefix)
        for provider in PROVIDERS:
            block_schema = schema["properties"][provider.name]
            nested = parse_environment_config(block_schema, f"{prefix}{provider.name.upper()}_")
            if nested:
                config[provider.name] = {**(config.get(provider.name) or {}), **nested}
        return config

    def discover_streams(self) -> list[Stream]:
        """Streams of the configured providers only."""
        return [
            stream_class(tap=self)
            for provider in PROVIDERS
            if isinstance(self.config.get(provider.name), dict)
            for stream_class in provider.streams
        ]


def full_table_streams(catalog: t.Any) -> frozenset[str]:
    """Names of the streams a catalog dict sets to FULL_TABLE: the entry's
    ``replication_method`` or the stream metadata's ``forced-replication-method`` or
    ``replication-method`` (the key the Singer spec and Meltano's ``metadata`` use)."""
    if not isinstance(catalog, dict):
        return frozenset()
    names = set()
    for entry in catalog.get("streams") or []:
        if not isinstance(entry, dict):
            continue
        methods = [entry.get("replication_method")]
        for item in entry.get("metadata") or []:
            if isinstance(item, dict) and not item.get("breadcrumb"):
                meta = item.get("metadata") or {}
                methods += [meta.get("forced-replication-method"), meta.get("replication-method")]
        if any(str(m).upper() == "FULL_TABLE" for m in methods if m):
            names.add(str(entry.get("tap_stream_id") or entry.get("stream")))
    return frozenset(names)


def main() -> None:
    """Console entry point: the SDK's CLI, with user-facing errors printed cleanly."""
    logger = logging.getLogger("tap-callcenter")
    try:
        TapCallcenter.cli()
    except ConfigValidationError as exc:
        for error in exc.errors:
            logger.error("Invalid configuration: %s", error)
        sys.exit(1)
    except CallcenterError as exc:
        logger.error("%s", exc)
        sys.exit(1)


if __name__ == "__main__":
    main()
