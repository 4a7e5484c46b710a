"""`TokenBudgetInstrumentor`: patches the provider SDKs that are installed, and unpatches them."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Collection, Iterable
from dataclasses import replace
from importlib import metadata
from typing import TYPE_CHECKING, Any

import wrapt
from opentelemetry import metrics, trace
from opentelemetry.instrumentation.dependencies import DependencyConflict, get_dependency_conflicts
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.semconv.schemas import Schemas

from .call import Runtime
from .metrics import create_call_instruments
from .options import resolve_options
from .package import _instruments, _instruments_any
from .pricing import PriceBook
from .providers import anthropic as anthropic_provider
from .providers import bedrock as bedrock_provider
from .providers import cohere as cohere_provider
from .providers import google_genai as google_genai_provider
from .providers import groq as groq_provider
from .providers import litellm as litellm_provider
from .providers import mistral as mistral_provider
from .providers import ollama as ollama_provider
from .providers import openai as openai_provider
from .providers.targets import StreamManagerTarget, Target
from .scoped_guard import ScopedGuard
from .stream_managers import stream_manager_wrapper
from .version import __version__
from .wrappers import async_wrapper, sync_wrapper

if TYPE_CHECKING:
    from .budgets.setup import InstalledBudgets

_logger = logging.getLogger(__name__)

INSTRUMENTATION_SCOPE = "opentelemetry_instrumentation_tokenbudget"
_SCHEMA_URL = Schemas.V1_37_0.value
_PROVIDER_PACKAGES = {
    "openai": openai_provider.targets,
    "anthropic": anthropic_provider.targets,
    "google.genai": google_genai_provider.targets,
    "botocore": bedrock_provider.targets,
    "groq": groq_provider.targets,
    "mistralai": mistral_provider.targets,
    "ollama": ollama_provider.targets,
    "cohere": cohere_provider.targets,
    "litellm": litellm_provider.targets,
}


def _installed(package: str) -> bool:
    # Found, not imported: importing LiteLLM takes seconds, which an application that never uses it
    # must not pay; the targets import what they wrap (or wait for the application to).
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


class TokenBudgetInstrumentor(BaseInstrumentor):  # type: ignore[misc]  # BaseInstrumentor is untyped
    """Records tokens and cost of every call of the supported SDKs (OpenAI, Anthropic, Gemini, Bedrock,
    Mistral, Cohere, Groq, Ollama), and enforces budgets.

    `instrument()` keyword arguments (all optional):

    - ``tracer_provider``, ``meter_provider``: default to the global ones.
    - ``prices``: ``{"model" or "provider/model": {"input_mtok": ..., "output_mtok": ...,
      "cache_read_mtok": ..., "cache_write_mtok": ...}}``, overriding the bundled price data.
    - ``metric_attribution_keys``: which `cost_attributes` go on metrics (default project, feature,
      tenant; user.id and session.id only on spans).
    - ``base_url_providers``: ``{"http://host:port/v1": "vllm"}`` names the provider behind a base URL.
    - ``local_servers``: ``["http://gpu-box:9000"]``, base URLs of your own model servers: free unless
      ``prices`` prices their models.
    - ``inject_stream_usage``: ask OpenAI-style streams for usage when the caller did not (default True).
    - ``anthropic_sdk_spans``: keep the Anthropic SDK's own span inside ours for the calls we record
      (default False: one GenAI span per call).
    - ``budgets``: a list of `Budget`; ``store``: where spend is kept, ``"memory"`` (default),
      ``"sqlite:///path.db"``, ``"redis://host:6379/0"`` or a `SpendStore`; ``on_store_error``:
      ``"open"`` (default) or ``"closed"``, what blocking budgets do while the store fails;
      ``on_threshold``: called with a `ThresholdEvent` when spend crosses a budget's threshold;
      ``on_forecast``: called with a `ForecastEvent` when a group's projected end-of-window spend
      passes its limit (once per window and group); ``on_anomaly``: called with an `AnomalyEvent`
      when a group's spend leaves the band of its own recent baseline, naming the driver;
      ``max_metric_groups``: per-group budget gauges up to this many groups (default 100);
      ``clock``: epoch seconds, for tests.
    - ``baggage_attribution``: read attribution from received W3C baggage (True, or attribute names).

    The file named by ``OTEL_INSTRUMENTATION_TOKENBUDGET_CONFIG`` (TOML, see `budgets.config_file`) can
    give all but the callables; keyword arguments win over it.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _check_dependency_conflicts(self) -> DependencyConflict | None:
        # Any one provider SDK is enough; the base class would demand all of them.
        return get_dependency_conflicts(_instruments, _instruments_any)

    def instrument(self, **kwargs: Any) -> Any:
        if self._is_instrumented_by_opentelemetry:
            # The base class would only say "already instrumented": say which options are ignored.
            differing = _differing_options(getattr(self, "_given", {}), kwargs)
            if differing:
                _logger.warning(
                    "tokenbudget: instrument() was called again with different options (%s); they are"
                    " ignored and those of the first call stay in force. Call uninstrument() first to"
                    " change them.",
                    ", ".join(differing),
                )
            return None
        return super().instrument(**kwargs)

    def _instrument(self, **kwargs: Any) -> None:
        tracer_provider = kwargs.get("tracer_provider")
        meter_provider = kwargs.get("meter_provider")
        # Every option is checked, and the configuration file read, before anything is patched.
        options = resolve_options(kwargs)
        self._given = dict(kwargs)
        settings = options.settings
        meter = metrics.get_meter(INSTRUMENTATION_SCOPE, __version__, meter_provider, schema_url=_SCHEMA_URL)
        runtime = Runtime(
            tracer=trace.get_tracer(
                INSTRUMENTATION_SCOPE, __version__, tracer_provider, schema_url=_SCHEMA_URL
            ),
            instruments=create_call_instruments(meter),
            prices=PriceBook(options.prices),
            settings=settings,
        )
        self._budgets: InstalledBudgets | None = None
        if options.budgets:
            # Imported only now: an application without budgets never loads them.
            from .budgets.setup import install_budgets

            self._budgets = install_budgets(runtime, options, tracer_provider, meter, INSTRUMENTATION_SCOPE)
        # Always there, budgets or not: a spend_limit block needs no budget declared.
        runtime.guard = ScopedGuard(runtime.guard, runtime.prices)
        if options.ledger is not None:
            # Imported only now: without a ledger no file is opened and sqlite3 is not loaded.
            from .ledger.writer import LedgerWriter

            runtime.ledger = LedgerWriter(options.ledger)
        self._runtime = runtime
        self._wrapped: list[Target] = []
        for package, targets_of in _PROVIDER_PACKAGES.items():
            if _installed(package):
                before = len(self._wrapped)
                targets = targets_of(settings)
                self._wrap_all(runtime, targets)
                if len(self._wrapped) == before and any(not target.lazy for target in targets):
                    # Silence here is how users end up with no cost data and no budget.
                    _logger.warning(
                        "tokenbudget: %s %s is installed but none of its methods could be wrapped, so its"
                        " calls are neither recorded nor budgeted; this release keeps its classes where we"
                        " do not look for them",
                        package,
                        _version_of(package),
                    )

    def _wrap_all(self, runtime: Runtime, targets: Iterable[Target]) -> None:
        for target in targets:
            if target.lazy and target.module not in sys.modules:
                self._wrap_when_imported(runtime, target)
            else:
                self._wrap(runtime, target)

    def _wrap_when_imported(self, runtime: Runtime, target: Target) -> None:
        def wrap_now(_module: object) -> None:
            # Hooks cannot be removed: one left by an earlier instrument() finds its runtime retired.
            if not runtime.enabled or getattr(self, "_runtime", None) is not runtime:
                return
            try:
                self._wrap(runtime, target)
            except Exception:  # the application's import must go on whatever happens to us
                _logger.debug("tokenbudget: could not wrap %s", target.module, exc_info=True)

        wrapt.register_post_import_hook(wrap_now, target.module)

    def _wrap(self, runtime: Runtime, target: Target) -> None:
        found = _find_module(target)
        if found is None:
            # Older SDK releases lack some APIs (the Responses API, beta messages): skip them.
            _logger.debug("tokenbudget: %s.%s.%s not found", target.module, target.class_name, target.method)
            return
        target = replace(target, module=found)
        if isinstance(target, StreamManagerTarget):
            wrapper = stream_manager_wrapper(runtime, target.adapter, target.is_async)
        elif target.is_async:
            wrapper = async_wrapper(runtime, target.adapter)
        else:
            wrapper = sync_wrapper(runtime, target.adapter)
        # Positional: wrapt 2 renamed the first parameter (module -> target).
        wrapt.wrap_function_wrapper(target.module, _attribute_path(target), wrapper)
        self._wrapped.append(target)

    def _uninstrument(self, **kwargs: Any) -> None:
        runtime: Runtime | None = getattr(self, "_runtime", None)
        if runtime is not None:
            runtime.enabled = False
            if runtime.ledger is not None:
                runtime.ledger.close()
                runtime.ledger = None
        budgets: InstalledBudgets | None = getattr(self, "_budgets", None)
        if budgets is not None:
            budgets.close()
            self._budgets = None
        for target in getattr(self, "_wrapped", ()):
            module = importlib.import_module(target.module)
            unwrap(getattr(module, target.class_name) if target.class_name else module, target.method)
        self._wrapped = []


def _differing_options(first: dict[str, Any], second: dict[str, Any]) -> list[str]:
    """The options that a second `instrument()` gives differently from the first, by name."""
    # Compared by repr: `Budget`s and callables need not compare equal to equal copies.
    names = sorted(set(first) | set(second))
    return [name for name in names if repr(first.get(name)) != repr(second.get(name))]


def _candidate_modules(module: str) -> list[str]:
    """Where SDK releases keep a class: openai < 1.55 and anthropic < 0.41 kept `Completions` and
    `Messages` in `resources/chat/completions.py` and `resources/messages.py`; later releases in a
    package of the same name (`resources/chat/completions/completions.py`)."""
    parent, _, last = module.rpartition(".")
    if parent.rpartition(".")[2] == last:
        return [module, parent]
    return [module]


def _attribute_path(target: Target) -> str:
    return f"{target.class_name}.{target.method}" if target.class_name else target.method


def _find_module(target: Target) -> str | None:
    for candidate in _candidate_modules(target.module):
        try:
            owner: object = importlib.import_module(candidate)
            if target.class_name:
                owner = getattr(owner, target.class_name)
            getattr(owner, target.method)
        except (ImportError, AttributeError):
            continue
        return candidate
    return None


def _version_of(package: str) -> str:
    try:
        return metadata.version(package.replace(".", "-"))
    except metadata.PackageNotFoundError:
        return "(version unknown)"
