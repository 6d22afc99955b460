"""Tyk's plugin bundles: ZIP files downloaded, verified and unpacked under
``<middleware_path>/bundles``.

Theory of operation (Tyk's ``gateway/coprocess_bundle.go``, and the
``tyk bundle build`` command that makes the files):

* An API definition names its bundle in ``custom_middleware_bundle``
  (ignored with ``custom_middleware_bundle_disabled``).  One name without a
  comma (nor surrounding blanks) is Tyk's single-bundle layout:
  ``bundles/<md5 hex of the name>/``.  Several names, separated by commas,
  are Tyk's multi-bundle layout: ``bundles/<md5 hex of the whole value>/``
  holds one directory per bundle, named after the bundle without its
  extension (``/`` and ``\\`` made ``__``), and the manifests are merged in
  order (hook paths prefixed with that directory; one ``auth_check`` and one
  ``driver`` at most).
* A bundle is downloaded from ``bundle_base_url`` with the name joined to the
  URL's path (Go's ``path.Join``), verified, unpacked into a temporary
  directory beside the others and renamed into place: a failure leaves
  nothing half-written, and a bundle on disk was whole when it was put there.
  Once on disk it is used as it is (a restart needs no bundle server); a new
  version of a bundle is a new name, as in Tyk.
* ``manifest.json`` holds ``file_list``, ``custom_middleware`` (which
  replaces the API definition's), ``checksum`` -- the MD5 hex of the listed
  files' contents, concatenated in order -- and ``signature``: base64 of the
  RSA PKCS #1 v1.5 signature over the SHA-256 of that same concatenation
  (Tyk's goverify).  With ``public_key_path`` set the signature is required.
* Verification runs on every download and every time a bundle on disk is put
  into service, unless ``skip_verify_existing_plugin_bundle`` (fastgate
  checks an unsigned bundle on disk too, where Tyk skips it).
* Refused: members with an absolute path or a ``..`` segment (zip-slip),
  bundles unpacking to more than :data:`MAX_UNPACKED_BYTES`, and -- when
  bundles must be signed -- members that are not in ``file_list`` (nothing
  the signature does not cover lands beside the plugin's modules).

:class:`BundleCache` is what the gateway holds; :meth:`BundleCache.fetch`
(async) downloads before a load, :meth:`BundleCache.get` (sync, no network)
hands the verified bundle to the chain builder.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
import hmac
import io
import logging
import os
import posixpath
import shutil
import ssl
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed

from fastgate.config import ConfigError, PluginConfig

__all__ = [
    "DOWNLOAD_TIMEOUT",
    "MAX_UNPACKED_BYTES",
    "Bundle",
    "BundleCache",
    "BundleError",
    "BundleFetchError",
    "bundle_names",
    "bundle_url",
    "wanted_bundle",
]

log = logging.getLogger("fastgate.plugins")

#: The largest bundle accepted, unpacked (and downloaded).
MAX_UNPACKED_BYTES = 100 * 1024 * 1024
#: The most members a bundle may have.
MAX_MEMBERS = 10_000
#: Seconds one download may take in all (Tyk's bundle client timeout).
DOWNLOAD_TIMEOUT = 5.0
#: Pauses between download attempts after a network failure or a 5xx
#: (Tyk's exponential backoff: 4 retries from 0.5 s, doubling).
RETRY_DELAYS: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
MANIFEST = "manifest.json"
#: Where a download is unpacked before it is renamed into place.
TEMPORARY_PREFIX = ".tmp-"
#: Seconds after which a temporary directory is a dead process's leftover.
STALE_TEMPORARY_AGE = 3600.0
#: Hook lists merged from several bundles, in order.
_HOOK_LISTS = ("pre", "post", "post_key_auth", "response")
_CHUNK = 64 * 1024


class BundleError(Exception):
    """A bundle that cannot be used; ``str()`` says why."""


class BundleFetchError(BundleError):
    """A bundle that could not be downloaded, or was refused once downloaded.

    ``url`` is the address asked (credentials and query left out).
    """

    def __init__(self, name: str, url: str, reason: str) -> None:
        self.name = name
        self.url = url
        self.reason = reason
        super().__init__(f"Couldn't fetch bundle {name!r} from {url}: {reason}")


class _Retryable(Exception):
    """A download failure worth another attempt (network, 5xx)."""


@dataclass(frozen=True, slots=True)
class Bundle:
    """A verified bundle on disk.

    ``name`` is the API's ``custom_middleware_bundle``; ``directory`` the
    absolute path hook ``path``s are relative to; ``manifest`` the decoded
    ``manifest.json`` (``file_list``, ``custom_middleware``, ``checksum``,
    ``signature`` always present; for several bundles their merge, with
    ``file_list`` and hook paths relative to ``directory``), whose
    ``custom_middleware`` REPLACES the API definition's, as in Tyk.
    ``parts`` is the unpacked directory of each bundle, in order
    (``(directory,)`` for one).
    """

    name: str
    directory: str
    manifest: dict[str, Any]
    parts: tuple[str, ...] = ()


def bundle_names(value: str) -> list[str]:
    """The bundle names in a ``custom_middleware_bundle`` value, as Tyk's
    ``parseBundleNames`` reads it: split on commas, blanks trimmed, empty
    entries dropped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def wanted_bundle(definition: Mapping[str, object]) -> str:
    """The ``custom_middleware_bundle`` of an API definition that is to be
    loaded: "" when it names none, or with ``custom_middleware_bundle_disabled``
    (a value of the wrong type counts as none: the definition's own parser
    reports it)."""
    value = definition.get("custom_middleware_bundle")
    if not isinstance(value, str) or not bundle_names(value):
        return ""
    if definition.get("custom_middleware_bundle_disabled") is True:
        return ""
    return value


def bundle_url(base_url: str, name: str) -> str:
    """Where bundle ``name`` is downloaded from: ``name`` joined to the path
    of ``base_url`` as Go's ``path.Join`` does (the query kept).  Raises
    BundleError when ``base_url`` is empty."""
    if not base_url:
        raise BundleError("No bundle base URL set (bundle_base_url), cannot download "
                          f"bundle {name!r}")
    parts = urlsplit(base_url)
    joined = posixpath.normpath(posixpath.join(unquote(parts.path), name))
    if joined == ".":
        joined = ""
    if parts.netloc and joined and not joined.startswith("/"):
        joined = "/" + joined
    return urlunsplit((parts.scheme, parts.netloc, quote(joined, safe="/$&+,:;=@"),
                       parts.query, ""))


def _shown(url: str) -> str:
    """``url`` for messages and logs: without user info and query (either
    may carry credentials)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if parts.port is not None:
        host += f":{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "…" if parts.query else "", ""))


def _subdirectory(name: str) -> str:
    """Tyk's ``bundleSubdirName``: the bundle's name without its extension
    (Go's ``filepath.Ext``: from the last dot of the last segment), path
    separators made ``__``.  Raises BundleError for a name that would be
    its parent's directory itself."""
    dot = name.rfind(".")
    stem = name[:dot] if dot > name.rfind("/") else name
    if stem in (".", ".."):
        raise BundleError(f"bundle name {name!r} makes no directory name")
    stem = stem.replace("/", "__").replace("\\", "__")
    if not stem:
        return "bundle_" + hashlib.sha256(name.encode()).hexdigest()[:12]
    return stem


def _relative(path: str) -> list[str] | None:
    """The segments of a relative path inside a bundle, or None when it is
    absolute or climbs out (``..``)."""
    if not path or "\x00" in path or path.startswith(("/", "\\")) or (
            len(path) > 1 and path[1] == ":"):
        return None
    segments = [s for s in path.replace("\\", "/").split("/") if s not in ("", ".")]
    if not segments or ".." in segments:
        return None
    return segments


class BundleCache:
    """The bundles under ``<middleware_path>/bundles``: downloaded once,
    verified each time they go into service."""

    def __init__(self, config: PluginConfig) -> None:
        self.config = config
        #: ``<middleware_path>/bundles``.
        self.root = os.path.join(config.middleware_path, "bundles")
        #: Pauses between download attempts (see :data:`RETRY_DELAYS`).
        self.retry_delays: tuple[float, ...] = RETRY_DELAYS
        self._public_key: rsa.RSAPublicKey | None = None
        self._inflight: dict[str, asyncio.Future[None]] = {}

    # -- layout --------------------------------------------------------------

    def directory(self, name: str) -> str:
        """The directory bundle value ``name`` is unpacked in (for several
        bundles, the one holding each of them)."""
        digest = hashlib.md5(name.encode(), usedforsecurity=False).hexdigest()
        return os.path.join(self.root, digest)

    def parts(self, name: str) -> list[tuple[str, str]]:
        """(bundle name, unpacked directory) of each bundle ``name`` lists.
        Raises BundleError for a value naming none, or a name that would
        climb out of the bundles directory."""
        names = bundle_names(name)
        if not names:
            raise BundleError("names no bundle")
        for item in names:
            if ".." in item.replace("\\", "/").split("/") or "\x00" in item:
                raise BundleError(f"bundle name {item!r} has a '..' segment")
        if len(names) == 1 and names[0] == name:
            return [(name, self.directory(name))]
        root = self.directory(name)
        seen: dict[str, str] = {}
        out = []
        for item in names:
            sub = _subdirectory(item)
            if sub in seen:
                raise BundleError(f"bundles {seen[sub]!r} and {item!r} would be unpacked "
                                  f"in the same directory ({sub})")
            seen[sub] = item
            out.append((item, os.path.join(root, sub)))
        return out

    def is_cached(self, name: str) -> bool:
        """Every bundle ``name`` lists is unpacked (False for a bad value)."""
        try:
            return all(os.path.isdir(path) for _, path in self.parts(name))
        except BundleError:
            return False

    # -- in service ----------------------------------------------------------

    def get(self, spec_api_id: str, name: str, source: str) -> Bundle:
        """The verified bundle(s) ``name`` (an API's ``custom_middleware_bundle``)
        on disk; no network.

        Raises ``ConfigError(source, "custom_middleware_bundle", ...)`` when a
        bundle is not on disk, its manifest is unreadable, or it fails
        verification (``invalid checksum``, ``Bundle isn't signed``,
        ``crypto/rsa: verification error``).
        """
        try:
            return self._get(name)
        except BundleError as exc:
            raise ConfigError(source, "custom_middleware_bundle",
                              f"API {spec_api_id!r}: {exc}") from None

    def _get(self, name: str) -> Bundle:
        parts = self.parts(name)
        loaded = []
        for item, path in parts:
            if not os.path.isdir(path):
                if self.config.enable_bundle_downloader:
                    why = "it has not been downloaded"
                else:
                    why = "the bundle downloader is off (enable_bundle_downloader)"
                raise BundleError(f"bundle {item!r} is not in {path} and {why}")
            deep = not self.config.skip_verify_existing_plugin_bundle
            try:
                manifest = self._verified_manifest(path, deep=deep)
            except BundleError as exc:
                raise BundleError(f"bundle {item!r} ({path}): {exc}") from None
            loaded.append((item, path, manifest))
        if len(parts) == 1 and parts[0][0] == name:
            _, path, manifest = loaded[0]
            return Bundle(name, path, manifest, (path,))
        return Bundle(name, self.directory(name), _merge(loaded),
                      tuple(path for _, path, _ in loaded))

    # -- verification --------------------------------------------------------

    def _key(self) -> rsa.RSAPublicKey:
        if self._public_key is None:
            path = self.config.public_key_path
            try:
                with open(path, "rb") as file:
                    data = file.read()
            except OSError as exc:
                raise BundleError(f"cannot read public_key_path {path}: "
                                  f"{exc.strerror or exc}") from None
            try:
                key = serialization.load_pem_public_key(data)
            except ValueError:
                raise BundleError(f"public_key_path {path}: no PEM public key found") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise BundleError(f"public_key_path {path}: not an RSA public key "
                                  "(Tyk's bundles are signed with RSA)")
            self._public_key = key
        return self._public_key

    def _verified_manifest(self, directory: str, *, deep: bool) -> dict[str, Any]:
        """The manifest of the bundle unpacked in ``directory``; with ``deep``,
        checked against its files and the public key.  Raises BundleError."""
        manifest = _read_manifest(directory)
        if not deep:
            return manifest
        signed = bool(self.config.public_key_path)
        if signed and not manifest["signature"]:
            raise BundleError("Bundle isn't signed")
        # MD5 is Tyk's format for the checksum (integrity, not authenticity:
        # the signature is over SHA-256).
        md5 = hashlib.md5(usedforsecurity=False)
        sha256 = hashlib.sha256()
        total = 0
        real_root = os.path.realpath(directory)
        for entry in manifest["file_list"]:
            segments = _relative(entry)
            if segments is None:
                raise BundleError(f"{MANIFEST}: file_list entry {entry!r} is outside the bundle")
            path = os.path.join(directory, *segments)
            if os.path.commonpath([real_root, os.path.realpath(path)]) != real_root:
                raise BundleError(f"{MANIFEST}: file_list entry {entry!r} is outside the bundle")
            try:
                with open(path, "rb") as file:
                    while chunk := file.read(_CHUNK):
                        total += len(chunk)
                        if total > MAX_UNPACKED_BYTES:
                            raise BundleError("its files are larger than 100 MiB")
                        md5.update(chunk)
                        sha256.update(chunk)
            except OSError as exc:
                raise BundleError(f"{MANIFEST}: file_list names {entry!r}, which cannot be "
                                  f"read: {exc.strerror or exc}") from None
        expected = manifest["checksum"].encode()
        if not hmac.compare_digest(md5.hexdigest().encode(), expected):
            raise BundleError("invalid checksum")
        if signed:
            try:
                signature = base64.b64decode(manifest["signature"], validate=True)
            except (binascii.Error, ValueError):
                raise BundleError(f"{MANIFEST}: signature is not base64") from None
            try:
                self._key().verify(signature, sha256.digest(), padding.PKCS1v15(),
                                   Prehashed(hashes.SHA256()))
            except InvalidSignature:
                raise BundleError("crypto/rsa: verification error") from None
        return manifest

    # -- downloading ---------------------------------------------------------

    async def fetch(self, api_id: str, name: str) -> None:
        """Download, verify and unpack every bundle ``name`` lists that is not
        on disk yet (nothing to do with ``enable_bundle_downloader`` off).
        The network and the disk are used from a thread, never the loop.

        Raises BundleFetchError naming the URL (or BundleError for a bad
        name or no ``bundle_base_url``).
        """
        if not self.config.enable_bundle_downloader:
            return
        for item, path in self.parts(name):
            if os.path.isdir(path):
                continue
            pending = self._inflight.get(path)
            if pending is None:
                pending = asyncio.ensure_future(self._fetch_one(api_id, item, path))
                self._inflight[path] = pending
                pending.add_done_callback(functools.partial(self._settled, path))
            await asyncio.shield(pending)

    def _settled(self, path: str, _done: asyncio.Future[None]) -> None:
        self._inflight.pop(path, None)

    async def _fetch_one(self, api_id: str, name: str, path: str) -> None:
        url = bundle_url(self.config.bundle_base_url, name)
        shown = _shown(url)
        loop = asyncio.get_running_loop()
        log.info("API %r: downloading plugin bundle %s", api_id, shown)
        attempt = 0
        while True:
            try:
                data = await loop.run_in_executor(None, self._download, url)
                break
            except _Retryable as exc:
                if attempt >= len(self.retry_delays):
                    raise BundleFetchError(name, shown, str(exc)) from None
                await asyncio.sleep(self.retry_delays[attempt])
                attempt += 1
            except BundleError as exc:
                raise BundleFetchError(name, shown, str(exc)) from None
        try:
            await loop.run_in_executor(None, self._unpack, data, path)
        except BundleError as exc:
            raise BundleFetchError(name, shown, str(exc)) from None
        log.info("API %r: plugin bundle %r unpacked in %s", api_id, name, path)

    def _download(self, url: str) -> bytes:
        """The bytes at ``url`` (blocking; run in a thread).  Raises
        _Retryable or BundleError."""
        scheme = urlsplit(url).scheme.lower()
        if scheme == "file":
            local = unquote(url[len("file://"):])
            try:
                if os.path.getsize(local) > MAX_UNPACKED_BYTES:
                    raise BundleError("the bundle is larger than 100 MiB")
                with open(local, "rb") as file:
                    return file.read()
            except OSError as exc:
                raise BundleError(f"cannot read {local}: {exc.strerror or exc}") from None
        if scheme not in ("http", "https"):
            raise BundleError("Unknown URL scheme")
        context = ssl.create_default_context()
        if self.config.bundle_insecure_skip_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        headers = {"User-Agent": "fastgate"}
        parts = urlsplit(url)
        if parts.username is not None:
            # Credentials in the URL are sent as Basic auth, as Go's client does.
            credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            headers["Authorization"] = "Basic " + base64.b64encode(credentials.encode()).decode()
            host = parts.netloc.rpartition("@")[2]
            url = urlunsplit((parts.scheme, host, parts.path, parts.query, ""))
        # http(s) only (checked above); urllib follows redirects to http(s) only.
        request = urllib.request.Request(url, headers=headers)  # noqa: S310
        deadline = time.monotonic() + DOWNLOAD_TIMEOUT
        try:
            with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT,  # noqa: S310
                                        context=context) as response:
                if response.status != 200:
                    raise BundleError(f"HTTP Error, got status code {response.status}")
                body = io.BytesIO()
                while chunk := response.read(_CHUNK):
                    body.write(chunk)
                    if body.tell() > MAX_UNPACKED_BYTES:
                        raise BundleError("the bundle is larger than 100 MiB")
                    if time.monotonic() > deadline:
                        raise _Retryable(f"Error getting bundle: not received within "
                                         f"{DOWNLOAD_TIMEOUT:g} s")
                return body.getvalue()
        except urllib.error.HTTPError as exc:
            exc.close()
            message = f"HTTP Error, got status code {exc.code}"
            if exc.code >= 500:
                raise _Retryable(message) from None
            raise BundleError(message) from None
        except urllib.error.URLError as exc:
            raise _Retryable(f"Error getting bundle: {exc.reason}") from None
        except (OSError, ValueError) as exc:  # timeouts, resets, bad chunking
            raise _Retryable(f"Error getting bundle: {exc}") from None

    def _unpack(self, data: bytes, path: str) -> None:
        """Unpack ZIP ``data``, verify it and rename it to ``path`` (blocking;
        run in a thread).  Raises BundleError; nothing is left on failure."""
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
            members = archive.infolist()
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError) as exc:
            raise BundleError(f"not a ZIP file: {exc}") from None
        if len(members) > MAX_MEMBERS:
            raise BundleError(f"more than {MAX_MEMBERS} members")
        if sum(member.file_size for member in members) > MAX_UNPACKED_BYTES:
            raise BundleError("it unpacks to more than 100 MiB (the most a bundle may hold)")
        placed: list[tuple[zipfile.ZipInfo, list[str]]] = []
        for member in members:
            segments = _relative(member.filename)
            if segments is None:
                raise BundleError(f"refused: member {member.filename!r} would be unpacked "
                                  "outside the bundle directory")
            placed.append((member, segments))
        os.makedirs(self.root, mode=0o700, exist_ok=True)
        self._remove_stale_temporaries()
        temporary = tempfile.mkdtemp(prefix=TEMPORARY_PREFIX, dir=self.root)
        try:
            total = 0
            for member, segments in placed:
                target = os.path.join(temporary, *segments)
                if member.is_dir():
                    os.makedirs(target, mode=0o700, exist_ok=True)
                    continue
                os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
                try:
                    with archive.open(member) as source, open(target, "xb") as out:
                        while chunk := source.read(_CHUNK):
                            total += len(chunk)
                            if total > MAX_UNPACKED_BYTES:
                                raise BundleError("it unpacks to more than 100 MiB "
                                                  "(the most a bundle may hold)")
                            out.write(chunk)
                except FileExistsError:
                    raise BundleError(f"member {member.filename!r} appears twice") from None
                except (zipfile.BadZipFile, NotImplementedError, RuntimeError) as exc:
                    raise BundleError(f"member {member.filename!r}: {exc}") from None
            manifest = self._verified_manifest(temporary, deep=True)
            if self.config.public_key_path:
                self._refuse_unlisted(placed, manifest)
            os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
            try:
                os.rename(temporary, path)
            except OSError:
                if not os.path.isdir(path):  # not another worker's copy
                    raise
        except OSError as exc:
            raise BundleError(f"cannot unpack into {self.root}: {exc.strerror or exc}") from None
        finally:
            if os.path.isdir(temporary):
                shutil.rmtree(temporary, ignore_errors=True)

    def _remove_stale_temporaries(self) -> None:
        """Remove what a process killed while unpacking left behind (old
        enough not to be another worker's download in progress)."""
        cutoff = time.time() - STALE_TEMPORARY_AGE
        with os.scandir(self.root) as entries:
            for entry in entries:
                if entry.name.startswith(TEMPORARY_PREFIX) and entry.is_dir(
                        follow_symlinks=False) and entry.stat().st_mtime < cutoff:
                    shutil.rmtree(entry.path, ignore_errors=True)

    @staticmethod
    def _refuse_unlisted(placed: list[tuple[zipfile.ZipInfo, list[str]]],
                         manifest: dict[str, Any]) -> None:
        listed = {"/".join(s) for s in map(_relative, manifest["file_list"]) if s}
        listed.add(MANIFEST)
        for member, segments in placed:
            if not member.is_dir() and "/".join(segments) not in listed:
                raise BundleError(f"member {member.filename!r} is not in the manifest's "
                                  "file_list: the signature would not cover it")


def _read_manifest(directory: str) -> dict[str, Any]:
    """``manifest.json`` of the bundle in ``directory``, its four fields
    checked (null: the empty value, as Go decodes it).  Raises BundleError."""
    path = os.path.join(directory, MANIFEST)
    try:
        with open(path, "rb") as file:
            raw = file.read(MAX_UNPACKED_BYTES + 1)
    except FileNotFoundError:
        raise BundleError(f"the bundle has no {MANIFEST}") from None
    except OSError as exc:
        raise BundleError(f"cannot read {MANIFEST}: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BundleError(f"{MANIFEST} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise BundleError(f"{MANIFEST} is not a JSON object")
    manifest = dict(data)
    file_list = manifest.get("file_list")
    if file_list is None:
        file_list = []
    if not isinstance(file_list, list) or not all(isinstance(f, str) for f in file_list):
        raise BundleError(f"{MANIFEST}: file_list must be an array of strings")
    middleware = manifest.get("custom_middleware")
    if middleware is None:
        middleware = {}
    if not isinstance(middleware, dict):
        raise BundleError(f"{MANIFEST}: custom_middleware must be an object")
    for field in ("checksum", "signature"):
        value = manifest.get(field)
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise BundleError(f"{MANIFEST}: {field} must be a string")
        manifest[field] = value
    manifest["file_list"] = file_list
    manifest["custom_middleware"] = middleware
    return manifest


def _prefixed(subdirectory: str, path: str) -> str:
    """Go's ``filepath.Join(subdir, path)``."""
    return posixpath.normpath(subdirectory + "/" + path)


def _merge(loaded: list[tuple[str, str, dict[str, Any]]]) -> dict[str, Any]:
    """Tyk's ``mergeBundleManifest`` over several bundles: hook lists
    appended in order with paths prefixed by each bundle's directory, one
    ``auth_check``, one ``driver``, the first ``id_extractor`` that extracts."""
    merged: dict[str, Any] = {}
    file_list: list[str] = []
    for name, path, manifest in loaded:
        sub = os.path.basename(path)
        source = manifest["custom_middleware"]
        file_list.extend(_prefixed(sub, f) for f in manifest["file_list"])

        def rewritten(hook: object, where: str, sub: str = sub,
                      name: str = name) -> dict[str, Any]:
            if not isinstance(hook, dict):
                raise BundleError(f"bundle {name!r}: {MANIFEST}: custom_middleware.{where} "
                                  "must be an object")
            hook = dict(hook)
            if isinstance(hook.get("path"), str) and hook["path"]:
                hook["path"] = _prefixed(sub, hook["path"])
            return hook

        driver = source.get("driver")
        if driver:
            if not merged.get("driver"):
                merged["driver"] = driver
            elif merged["driver"] != driver:
                raise BundleError(f"bundle {name!r} declares driver {driver!r} but earlier "
                                  f"bundles set {merged['driver']!r}")
        auth = source.get("auth_check")
        if isinstance(auth, dict) and auth.get("name"):
            if merged.get("auth_check"):
                raise BundleError(
                    f"bundle {name!r} declares an auth_check hook but another bundle has "
                    f"already set one ({merged['auth_check'].get('name')!r})")
            merged["auth_check"] = rewritten(auth, "auth_check")
        for kind in _HOOK_LISTS:
            hooks = source.get(kind)
            if hooks is None:
                continue
            if not isinstance(hooks, list):
                raise BundleError(f"bundle {name!r}: {MANIFEST}: custom_middleware.{kind} "
                                  "must be an array")
            merged.setdefault(kind, []).extend(
                rewritten(hook, f"{kind}[{index}]") for index, hook in enumerate(hooks))
        extractor = source.get("id_extractor")
        if isinstance(extractor, dict) and extractor.get("extract_with") \
                and "id_extractor" not in merged:
            merged["id_extractor"] = extractor
    return {"file_list": file_list, "custom_middleware": merged, "checksum": "",
            "signature": ""}

