"""STIX 2.1 Cyber-observable Objects (part 6): properties, predefined extensions and object rules."""

from __future__ import annotations

import re
from typing import Any

from .identifiers import uuid_version
from .properties import (
    EMAIL,
    MAC_VALUE,
    STRING_LIST,
    Checker,
    Context,
    Invalid,
    Struct,
    binary,
    boolean,
    dictionary,
    enum,
    hashes,
    hex_string,
    hostname,
    integer,
    ipv4_value,
    ipv6_value,
    later_than,
    list_of,
    number,
    ref,
    regex,
    software_language,
    string,
    timestamp,
    timestamp_seconds,
    uri,
)

SCO_TYPES = (
    "artifact", "autonomous-system", "directory", "domain-name", "email-addr", "email-message", "file",
    "ipv4-addr", "ipv6-addr", "mac-addr", "mutex", "network-traffic", "process", "software", "url",
    "user-account", "windows-registry-key", "x509-certificate",
)
SCO_TYPE_SET = frozenset(SCO_TYPES)

_NON_NEG = integer(minimum=0)
_INT = integer()


def _sco_ref(*types: str) -> Checker:
    return ref(types)


def _sco_refs(*types: str) -> Checker:
    return list_of(ref(types))


def _any_sco_refs() -> Checker:
    return list_of(ref(None, excluded=(), what="a cyber-observable object"))


def _charset(value: Any, path: str, ctx: Context) -> None:
    # IANA character-set names: letters, digits and - _ ( ) : . + only (offline form of the registry check)
    string(value, path, ctx)
    if not re.match(r"[a-zA-Z0-9/.+_:-]{2,250}\Z", value) or not re.match(r"[a-zA-Z0-9_()-]+\Z", value):
        raise Invalid(path, "format", f"'{value}' is not an IANA character-set name (e.g. UTF-8, ISO-8859-1)")


_MIME = regex(r"(application|audio|font|image|message|model|multipart|text|video)/[a-zA-Z0-9.+_-]+",
              "a media type of the form type/subtype")


def _string_or_integer(v: Any, p: str, c: Context) -> None:
    if type(v) not in (str, int):
        raise Invalid(p, "type", "must be a string or an integer")


def _not_empty(v: dict[str, Any], p: str, c: Context) -> None:
    if not v:
        raise Invalid(p, "min-properties", "must not be empty")


def _one_body(v: dict[str, Any], p: str, c: Context) -> None:
    if ("body" in v) == ("body_raw_ref" in v):
        raise Invalid(p, "one-of", "a MIME part must carry exactly one of body and body_raw_ref")


# --- predefined extensions -----------------------------------------------------------------------

_NTFS = Struct(
    "the ntfs-ext extension",
    {
        "sid": string,
        "alternate_data_streams": list_of(Struct(
            "an alternate data stream", {"name": string, "hashes": hashes, "size": _NON_NEG}, required=("name",)
        )),
    },
    any_of=("sid", "alternate_data_streams"),
)
_RASTER = Struct(
    "the raster-image-ext extension",
    {
        "image_height": _INT, "image_width": _INT, "bits_per_pixel": _INT,
        "exif_tags": dictionary(
            _string_or_integer,
            key=re.compile(r"[A-Z][a-zA-Z0-9_-]+\Z"), key_rule="an EXIF tag name (capital letter first)",
        ),
    },
    any_of=("image_height", "image_width", "bits_per_pixel", "exif_tags"),
)
_PDF = Struct(
    "the pdf-ext extension",
    {"version": string, "is_optimized": boolean, "document_info_dict": dictionary(string), "pdfid0": string,
     "pdfid1": string},
    any_of=("version", "is_optimized", "document_info_dict", "pdfid0", "pdfid1"),
)
_ARCHIVE = Struct(
    "the archive-ext extension",
    {"contains_refs": _sco_refs("file", "directory"), "comment": string},
    required=("contains_refs",),
)
_PE_OPTIONAL_HEADER = Struct(
    "a PE optional header",
    {
        "magic_hex": hex_string, "major_linker_version": _INT, "minor_linker_version": _INT,
        "size_of_code": _NON_NEG, "size_of_initialized_data": _NON_NEG, "size_of_uninitialized_data": _NON_NEG,
        "address_of_entry_point": _INT, "base_of_code": _INT, "base_of_data": _INT, "image_base": _INT,
        "section_alignment": _INT, "file_alignment": _INT, "major_os_version": _INT, "minor_os_version": _INT,
        "major_image_version": _INT, "minor_image_version": _INT, "major_subsystem_version": _INT,
        "minor_subsystem_version": _INT, "win32_version_value_hex": hex_string, "size_of_image": _NON_NEG,
        "size_of_headers": _NON_NEG, "checksum_hex": hex_string, "subsystem_hex": hex_string,
        "dll_characteristics_hex": hex_string, "size_of_stack_reserve": _NON_NEG,
        "size_of_stack_commit": _NON_NEG, "size_of_heap_reserve": _NON_NEG, "size_of_heap_commit": _NON_NEG,
        "loader_flags_hex": hex_string, "number_of_rva_and_sizes": _INT, "hashes": hashes,
    },
    closed=True,
    checks=(_not_empty,),
)
_PE_SECTION = Struct(
    "a PE section", {"name": string, "size": _NON_NEG, "entropy": number(), "hashes": hashes}, required=("name",)
)
_PEBINARY = Struct(
    "the windows-pebinary-ext extension",
    {
        "pe_type": string, "imphash": string, "machine_hex": hex_string, "number_of_sections": _NON_NEG,
        "time_date_stamp": timestamp_seconds, "pointer_to_symbol_table_hex": hex_string,
        "number_of_symbols": _NON_NEG, "size_of_optional_header": _NON_NEG, "characteristics_hex": hex_string,
        "file_header_hashes": hashes, "optional_header": _PE_OPTIONAL_HEADER, "sections": list_of(_PE_SECTION),
    },
    required=("pe_type",),
)
_HTTP_REQUEST = Struct(
    "the http-request-ext extension",
    {
        "request_method": string, "request_value": string, "request_version": string,
        "request_header": dictionary(list_of(string, min_items=0), key=re.compile(r".+\Z", re.S),
                                     key_rule="a non-empty header name"),
        "message_body_length": _INT, "message_body_data_ref": _sco_ref("artifact"),
    },
    required=("request_method", "request_value"),
)
_ICMP = Struct("the icmp-ext extension", {"icmp_type_hex": hex_string, "icmp_code_hex": hex_string},
               required=("icmp_type_hex", "icmp_code_hex"))
_SOCKET = Struct(
    "the socket-ext extension",
    {
        "address_family": enum(("AF_UNSPEC", "AF_INET", "AF_IPX", "AF_APPLETALK", "AF_NETBIOS", "AF_INET6",
                                "AF_IRDA", "AF_BTH")),
        "is_blocking": boolean, "is_listening": boolean,
        "options": dictionary(_INT, key=re.compile(r"(SO|ICMP|ICMP6|IP|IPV6|MCAST|TCP|IRLMP)(_[A-Z]+)+\Z"),
                              key_rule="a socket option name such as SO_REUSEADDR"),
        "socket_type": enum(("SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQPACKET")),
        "socket_descriptor": _NON_NEG, "socket_handle": _INT,
    },
    required=("address_family",),
)
_TCP = Struct("the tcp-ext extension", {"src_flags_hex": hex_string, "dst_flags_hex": hex_string},
              any_of=("src_flags_hex", "dst_flags_hex"))


def _startup_info_value(v: Any, p: str, c: Context) -> None:
    key = p.rsplit(".", 1)[-1]
    if key in ("lpReserved", "lpReserved2"):
        return
    if key in ("cb", "dwX", "dwY", "dwXSize", "dwYSize", "dwXCountChars", "dwYCountChars", "cbReserved2"):
        _INT(v, p, c)
    else:
        string(v, p, c)


_WINDOWS_PROCESS = Struct(
    "the windows-process-ext extension",
    {
        "aslr_enabled": boolean, "dep_enabled": boolean, "priority": string, "owner_sid": string,
        "window_title": string,
        "startup_info": dictionary(_startup_info_value, key=re.compile(
            r"(lpDesktop|lpTitle|dwFillAttribute|dwFlags|wShowWindow|hStdInput|hStdOutput|hStdError|lpReserved|"
            r"lpReserved2|cb|dwX|dwY|dwXSize|dwYSize|dwXCountChars|dwYCountChars|cbReserved2)\Z"),
            key_rule="a STARTUPINFO member name"),
        "integrity_level": enum(("low", "medium", "high", "system")),
    },
    any_of=("aslr_enabled", "dep_enabled", "priority", "owner_sid", "window_title", "startup_info"),
)
_WINDOWS_SERVICE = Struct(
    "the windows-service-ext extension",
    {
        "service_name": string, "descriptions": STRING_LIST, "display_name": string, "group_name": string,
        "start_type": enum(("SERVICE_AUTO_START", "SERVICE_BOOT_START", "SERVICE_DEMAND_START",
                            "SERVICE_DISABLED", "SERVICE_SYSTEM_ALERT")),
        "service_dll_refs": _sco_refs("file"),
        "service_type": enum(("SERVICE_KERNEL_DRIVER", "SERVICE_FILE_SYSTEM_DRIVER", "SERVICE_WIN32_OWN_PROCESS",
                              "SERVICE_WIN32_SHARE_PROCESS")),
        "service_status": enum(("SERVICE_CONTINUE_PENDING", "SERVICE_PAUSE_PENDING", "SERVICE_PAUSED",
                                "SERVICE_RUNNING", "SERVICE_START_PENDING", "SERVICE_STOP_PENDING",
                                "SERVICE_STOPPED")),
    },
    any_of=("service_name", "descriptions", "display_name", "group_name", "start_type", "service_dll_refs",
            "service_type", "service_status"),
)
_UNIX_ACCOUNT = Struct(
    "the unix-account-ext extension",
    {"gid": number(), "groups": STRING_LIST, "home_dir": string, "shell": string},
    any_of=("gid", "groups", "home_dir", "shell"),
)

# extension name -> (the SCO type it belongs to, checker)
PREDEFINED_EXTENSIONS: dict[str, tuple[str, Checker]] = {
    "ntfs-ext": ("file", _NTFS),
    "raster-image-ext": ("file", _RASTER),
    "pdf-ext": ("file", _PDF),
    "archive-ext": ("file", _ARCHIVE),
    "windows-pebinary-ext": ("file", _PEBINARY),
    "http-request-ext": ("network-traffic", _HTTP_REQUEST),
    "icmp-ext": ("network-traffic", _ICMP),
    "socket-ext": ("network-traffic", _SOCKET),
    "tcp-ext": ("network-traffic", _TCP),
    "windows-process-ext": ("process", _WINDOWS_PROCESS),
    "windows-service-ext": ("process", _WINDOWS_SERVICE),
    "unix-account-ext": ("user-account", _UNIX_ACCOUNT),
}

# --- object rules --------------------------------------------------------------------------------


def _artifact(obj: dict[str, Any], path: str, ctx: Context) -> None:
    has_bin, has_url = "payload_bin" in obj, "url" in obj
    if has_bin == has_url:
        raise Invalid("payload_bin", "one-of", "an artifact must carry either payload_bin or url (with hashes), not both or neither")
    if has_url and "hashes" not in obj:
        raise Invalid("hashes", "required", "an artifact given by url must also carry hashes")
    if "decryption_key" in obj and "encryption_algorithm" not in obj:
        raise Invalid("decryption_key", "dependency", "may only be present together with encryption_algorithm")


_HEADER_FIELD_BLOCKED = re.compile(
    r"^date|received_lines|content_type|from_ref|sender_ref|to_refs|cc_refs|bcc_refs|subject$")


def _email_header_value(v: Any, p: str, c: Context) -> None:
    if type(v) is str:
        return
    if type(v) is list and len(v) >= 2 and all(type(x) is str for x in v):
        return
    raise Invalid(p, "type", "must be a string, or a list of at least two strings for a repeated header")


def _additional_header_fields(value: Any, path: str, ctx: Context) -> None:
    dictionary(_email_header_value)(value, path, ctx)
    if all(_HEADER_FIELD_BLOCKED.search(k) for k in value):
        raise Invalid(path, "reserved-key", "must not only repeat headers that email-message defines as properties")


_MIME_PART = Struct(
    "a MIME part",
    {"body": string, "body_raw_ref": _sco_ref("artifact", "file"), "content_type": string,
     "content_disposition": string},
    checks=(_one_body,),
)


def _email_message(obj: dict[str, Any], path: str, ctx: Context) -> None:
    multipart = obj.get("is_multipart")
    if multipart is True and "body" in obj:
        raise Invalid("body", "dependency", "must not be present when is_multipart is true (use body_multipart)")
    if multipart is False and "body_multipart" in obj:
        raise Invalid("body_multipart", "dependency", "must not be present when is_multipart is false")


_END_AFTER_START = later_than("start", "end", strict=False)


def _network_traffic(obj: dict[str, Any], path: str, ctx: Context) -> None:
    if "src_ref" not in obj and "dst_ref" not in obj:
        raise Invalid("src_ref", "required", "network-traffic must have src_ref or dst_ref (or both)")
    if obj.get("is_active") is True and "end" in obj:
        raise Invalid("end", "dependency", "must not be present when is_active is true")
    _END_AFTER_START(obj, "", ctx)


def _v4_uuid(obj: dict[str, Any], path: str, ctx: Context) -> None:
    oid = obj.get("id")
    if type(oid) is str and uuid_version(oid) != 4:
        raise Invalid("id", "uuid-version", "a process object must use a UUIDv4 id")


def _v4_unless(*contributing: str) -> Any:
    def check(obj: dict[str, Any], path: str, ctx: Context) -> None:
        oid = obj.get("id")
        if type(oid) is str and not any(k in obj for k in contributing) and uuid_version(oid) != 4:
            raise Invalid("id", "uuid-version",
                          f"without any of its id-contributing properties ({', '.join(contributing)}) the id must be a UUIDv4")

    return check


def _registry_key(value: Any, path: str, ctx: Context) -> None:
    string(value, path, ctx)
    if re.search(r"^HKLM|HKCC|HKCR|HKCU|HKU|hklm|hkcc|hkcr|hkcu|hku", value):
        raise Invalid(path, "format", "must name the full hive (HKEY_LOCAL_MACHINE, ...), not an abbreviation such as HKLM")


_REGISTRY_VALUE = Struct(
    "a registry value",
    {
        "name": string, "data": string,
        "data_type": enum(("REG_NONE", "REG_SZ", "REG_EXPAND_SZ", "REG_BINARY", "REG_DWORD",
                           "REG_DWORD_BIG_ENDIAN", "REG_DWORD_LITTLE_ENDIAN", "REG_LINK", "REG_MULTI_SZ",
                           "REG_RESOURCE_LIST", "REG_FULL_RESOURCE_DESCRIPTION", "REG_RESOURCE_REQUIREMENTS_LIST",
                           "REG_QWORD", "REG_INVALID_TYPE")),
    },
    any_of=("name", "data", "data_type"),
)
_X509_V3 = Struct(
    "x509 v3 extensions",
    {
        **{k: string for k in (
            "basic_constraints", "name_constraints", "policy_constraints", "key_usage", "extended_key_usage",
            "subject_key_identifier", "authority_key_identifier", "subject_alternative_name",
            "issuer_alternative_name", "subject_directory_attributes", "crl_distribution_points",
            "inhibit_any_policy", "certificate_policies", "policy_mappings")},
        "private_key_usage_period_not_before": timestamp,
        "private_key_usage_period_not_after": timestamp,
    },
    any_of=("basic_constraints", "name_constraints", "policy_constraints", "key_usage", "extended_key_usage",
            "subject_key_identifier", "authority_key_identifier", "subject_alternative_name",
            "issuer_alternative_name", "subject_directory_attributes", "crl_distribution_points",
            "inhibit_any_policy", "private_key_usage_period_not_before", "private_key_usage_period_not_after",
            "certificate_policies", "policy_mappings"),
)

# CPE 2.3 formatted string binding (NISTIR 7695, section 6.2).
_CPE_AVSTRING = r"(?:(?:\?*|\*?)(?:[a-zA-Z0-9\-._]|\\[\\*?!\"#$%&'()+,/:;<=>@\[\]^`{|}~])+(?:\?*|\*?)|[*\-])"
_CPE = regex(
    rf"cpe:2\.3:[aho*\-](?::{_CPE_AVSTRING}){{5}}:(?:[a-zA-Z]{{2,3}}(?:-(?:[a-zA-Z]{{2}}|[0-9]{{3}}))?|[*\-])"
    rf"(?::{_CPE_AVSTRING}){{4}}\Z",
    "a CPE 2.3 formatted string (cpe:2.3:part:vendor:product:...)",
)


# type -> (properties, required, any_of, object rules)
SCO_SPECS: dict[str, tuple[dict[str, Checker], tuple[str, ...], tuple[str, ...], tuple[Any, ...]]] = {
    "artifact": (
        {"mime_type": _MIME, "payload_bin": binary, "url": uri, "hashes": hashes,
         "encryption_algorithm": enum(("AES-256-GCM", "ChaCha20-Poly1305", "mime-type-indicated")),
         "decryption_key": string},
        (), (), (_artifact, _v4_unless("hashes", "payload_bin")),
    ),
    "autonomous-system": ({"number": _INT, "name": string, "rir": string}, ("number",), (), ()),
    "directory": (
        {"path": string, "path_enc": _charset, "ctime": timestamp, "mtime": timestamp, "atime": timestamp,
         "contains_refs": _sco_refs("file", "directory")},
        ("path",), (), (),
    ),
    "domain-name": ({"value": hostname, "resolves_to_refs": _sco_refs("ipv4-addr", "ipv6-addr", "domain-name")},
                    ("value",), (), ()),
    "email-addr": ({"value": EMAIL, "display_name": string, "belongs_to_ref": _sco_ref("user-account")},
                   ("value",), (), ()),
    "email-message": (
        {"is_multipart": boolean, "date": timestamp, "content_type": string,
         "from_ref": _sco_ref("email-addr"), "sender_ref": _sco_ref("email-addr"),
         "to_refs": _sco_refs("email-addr"), "cc_refs": _sco_refs("email-addr"), "bcc_refs": _sco_refs("email-addr"),
         "message_id": string, "subject": string, "received_lines": STRING_LIST,
         "additional_header_fields": _additional_header_fields, "body": string,
         "body_multipart": list_of(_MIME_PART), "raw_email_ref": _sco_ref("artifact")},
        ("is_multipart",), (), (_email_message, _v4_unless("from_ref", "subject", "body")),
    ),
    "file": (
        {"hashes": hashes, "size": _NON_NEG, "name": string, "name_enc": _charset, "magic_number_hex": hex_string,
         "mime_type": string, "ctime": timestamp, "mtime": timestamp, "atime": timestamp,
         "parent_directory_ref": _sco_ref("directory"), "contains_refs": _any_sco_refs(),
         "content_ref": _sco_ref("artifact")},
        (), ("hashes", "name"), (),
    ),
    "ipv4-addr": ({"value": ipv4_value, "resolves_to_refs": _sco_refs("mac-addr"),
                   "belongs_to_refs": _sco_refs("autonomous-system")}, ("value",), (), ()),
    "ipv6-addr": ({"value": ipv6_value, "resolves_to_refs": _sco_refs("mac-addr"),
                   "belongs_to_refs": _sco_refs("autonomous-system")}, ("value",), (), ()),
    "mac-addr": ({"value": MAC_VALUE}, ("value",), (), ()),
    "mutex": ({"name": string}, ("name",), (), ()),
    "network-traffic": (
        {"start": timestamp, "end": timestamp, "is_active": boolean,
         "src_ref": _sco_ref("ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"),
         "dst_ref": _sco_ref("ipv4-addr", "ipv6-addr", "mac-addr", "domain-name"),
         "src_port": integer(0, 65535), "dst_port": integer(0, 65535), "protocols": STRING_LIST,
         "src_byte_count": _INT, "dst_byte_count": _INT, "src_packets": _INT, "dst_packets": _INT,
         "ipfix": dictionary(_string_or_integer), "src_payload_ref": _sco_ref("artifact"),
         "dst_payload_ref": _sco_ref("artifact"), "encapsulates_refs": _sco_refs("network-traffic"),
         "encapsulated_by_ref": _sco_ref("network-traffic")},
        ("protocols",), (), (_network_traffic,),
    ),
    "process": (
        {"is_hidden": boolean, "pid": _INT, "created_time": timestamp, "cwd": string, "command_line": string,
         "environment_variables": dictionary(string), "opened_connection_refs": _sco_refs("network-traffic"),
         "creator_user_ref": _sco_ref("user-account"), "image_ref": _sco_ref("file"),
         "parent_ref": _sco_ref("process"), "child_refs": _sco_refs("process")},
        (), ("extensions", "is_hidden", "pid", "created_time", "cwd", "command_line", "environment_variables",
             "opened_connection_refs", "creator_user_ref", "image_ref", "parent_ref", "child_refs"),
        (_v4_uuid,),
    ),
    "software": (
        {"name": string, "cpe": _CPE, "swid": string, "languages": list_of(software_language), "vendor": string,
         "version": string},
        ("name",), (), (),
    ),
    "url": ({"value": uri}, ("value",), (), ()),
    "user-account": (
        {"user_id": string, "credential": string, "account_login": string, "account_type": string,
         "display_name": string, "is_service_account": boolean, "is_privileged": boolean,
         "can_escalate_privs": boolean, "is_disabled": boolean, "account_created": timestamp,
         "account_expires": timestamp, "credential_last_changed": timestamp, "account_first_login": timestamp,
         "account_last_login": timestamp},
        (), ("extensions", "user_id", "credential", "account_login", "account_type", "display_name",
             "is_service_account", "is_privileged", "can_escalate_privs", "is_disabled", "account_created",
             "account_expires", "credential_last_changed", "account_first_login", "account_last_login"),
        (_v4_unless("account_type", "user_id", "account_login"),),
    ),
    "windows-registry-key": (
        {"key": _registry_key, "values": list_of(_REGISTRY_VALUE), "modified_time": timestamp,
         "creator_user_ref": _sco_ref("user-account"), "number_of_subkeys": _INT},
        (), ("key", "values", "modified_time", "creator_user_ref", "number_of_subkeys"),
        (_v4_unless("key", "values"),),
    ),
    "x509-certificate": (
        {"is_self_signed": boolean, "hashes": hashes, "version": string, "serial_number": string,
         "signature_algorithm": string, "issuer": string, "validity_not_before": timestamp,
         "validity_not_after": timestamp, "subject": string, "subject_public_key_algorithm": string,
         "subject_public_key_modulus": string, "subject_public_key_exponent": _INT,
         "x509_v3_extensions": _X509_V3},
        (), ("is_self_signed", "hashes", "version", "serial_number", "signature_algorithm", "issuer",
             "validity_not_before", "validity_not_after", "subject", "subject_public_key_algorithm",
             "subject_public_key_modulus", "subject_public_key_exponent", "x509_v3_extensions"),
        (_v4_unless("hashes", "serial_number"),),
    ),
}

# Properties every SCO may carry (part 6.1 common properties).
SCO_COMMON = ("type", "id", "spec_version", "object_marking_refs", "granular_markings", "defanged", "extensions")

# All property names of each SCO type, as the pattern checks use them.
SCO_PROPERTY_NAMES: dict[str, frozenset[str]] = {
    t: frozenset(SCO_COMMON) | frozenset(spec[0]) for t, spec in SCO_SPECS.items()
}
