"""deploy/kubernetes/: the ServiceMonitor, PodMonitor and PrometheusRule fit laios and rules.yml."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from laios.mixin.config import MixinConfig
from laios.mixin.kubernetes import manifests

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy" / "kubernetes"


def load(name: str) -> Any:
    """Parse a committed manifest."""
    return yaml.safe_load((DEPLOY / name).read_text(encoding="utf-8"))


def test_the_directory_holds_the_three_manifests() -> None:
    """deploy/kubernetes/ has exactly servicemonitor, podmonitor and prometheusrule.yaml."""
    assert sorted(path.name for path in DEPLOY.iterdir()) == [
        "podmonitor.yaml",
        "prometheusrule.yaml",
        "servicemonitor.yaml",
    ]


def test_kinds_and_api_version() -> None:
    """Each manifest is a monitoring.coreos.com/v1 object of its kind, named laios."""
    kinds = {
        "servicemonitor.yaml": "ServiceMonitor",
        "podmonitor.yaml": "PodMonitor",
        "prometheusrule.yaml": "PrometheusRule",
    }
    for name, kind in kinds.items():
        manifest = load(name)
        assert (manifest["apiVersion"], manifest["kind"]) == ("monitoring.coreos.com/v1", kind)
        assert manifest["metadata"]["name"] == "laios"


def test_prometheus_rule_groups_are_the_rules_file_groups() -> None:
    """The PrometheusRule's spec.groups equal grafana/prometheus/rules.yml's groups."""
    rules = yaml.safe_load((REPO / "grafana" / "prometheus" / "rules.yml").read_text("utf-8"))
    assert load("prometheusrule.yaml")["spec"] == {"groups": rules["groups"]}


def test_service_monitor_scrapes_the_metrics_port() -> None:
    """The ServiceMonitor selects name=laios Services and scrapes their port metrics, /metrics."""
    spec = load("servicemonitor.yaml")["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "laios"}}
    assert spec["endpoints"] == [{"port": "metrics", "path": "/metrics", "scheme": "http"}]
    assert spec["jobLabel"] == "app.kubernetes.io/name"


def test_pod_monitor_scrapes_the_metrics_container_port() -> None:
    """The PodMonitor selects the same pods and scrapes their container port metrics, /metrics."""
    spec = load("podmonitor.yaml")["spec"]
    assert spec["selector"] == {"matchLabels": {"app.kubernetes.io/name": "laios"}}
    assert spec["podMetricsEndpoints"] == [
        {"port": "metrics", "path": "/metrics", "scheme": "http"}
    ]
    assert spec["jobLabel"] == "app.kubernetes.io/name"


def test_match_and_manifest_labels_come_from_the_config() -> None:
    """match_labels select the workload; manifest_labels label all three objects."""
    config = MixinConfig(
        match_labels=(("app.kubernetes.io/name", "orders-api"),),
        manifest_labels=(("release", "kube-prometheus-stack"),),
    )
    built = manifests(config)
    for manifest in built.values():
        assert manifest["metadata"]["labels"] == {"release": "kube-prometheus-stack"}
    for name in ("servicemonitor.yaml", "podmonitor.yaml"):
        assert built[name]["spec"]["selector"]["matchLabels"] == {
            "app.kubernetes.io/name": "orders-api"
        }


def test_two_services_get_manifests_of_their_own_names() -> None:
    """The manifests generated for two workloads have different names, so applying both in
    one namespace keeps both (the same name would replace one service's monitor and rules
    with the other's); the default ones keep the name laios. Labels the name folds (several,
    upper case, "_", ".") add a digest of the labels."""
    orders = manifests(MixinConfig(match_labels=(("app.kubernetes.io/name", "orders-api"),)))
    billing = manifests(
        MixinConfig(match_labels=(("app.kubernetes.io/name", "Billing_API"), ("tier", "v2.1")))
    )
    assert {m["metadata"]["name"] for m in orders.values()} == {"laios-orders-api"}
    assert {m["metadata"]["name"] for m in billing.values()} == {
        "laios-billing-api-v2-1-a42675b724"
    }
    assert {m["metadata"]["name"] for m in manifests(MixinConfig()).values()} == {"laios"}


def test_rule_sets_of_two_selectors_on_one_service_keep_apart() -> None:
    """Two rule sets generated for one service's labels with two selectors (a pool each, say)
    are two PrometheusRules: the same name would make the second ``kubectl apply`` replace
    the first set's rules. Their monitors, which select the same Services, stay one object."""
    labels = (("app.kubernetes.io/name", "orders-api"),)
    search = manifests(MixinConfig(selector='pool="search"', match_labels=labels))
    batch = manifests(MixinConfig(selector='pool="batch"', match_labels=labels))
    plain = manifests(MixinConfig(match_labels=labels))
    rules = {m["prometheusrule.yaml"]["metadata"]["name"] for m in (search, batch, plain)}
    assert len(rules) == 3
    assert plain["prometheusrule.yaml"]["metadata"]["name"] == "laios-orders-api"
    for built in (search, batch):
        assert built["prometheusrule.yaml"]["metadata"]["name"].startswith("laios-orders-api-")
        for monitor in ("servicemonitor.yaml", "podmonitor.yaml"):
            assert built[monitor]["metadata"]["name"] == "laios-orders-api"
    # The same selector, spelt with other spaces or order, names the same object.
    again = MixinConfig(selector=' pool = "search" ', match_labels=labels)
    assert (
        manifests(again)["prometheusrule.yaml"]["metadata"]
        == search["prometheusrule.yaml"]["metadata"]
    )


def test_manifest_names_are_kubernetes_names() -> None:
    """A derived name is at most 63 lowercase letters, digits and dashes, starting and ending
    with a letter or digit, whatever the label values."""
    for values in (("x" * 63, "y" * 63), ("A", "b_.c"), ("", "")):
        for selector in ("", 'job="x"'):
            config = MixinConfig(
                selector=selector, match_labels=(("a", values[0]), ("b", values[1]))
            )
            for manifest in manifests(config).values():
                name = manifest["metadata"]["name"]
                assert re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name), name


def names(config: MixinConfig) -> tuple[str, str]:
    """The name of the monitors and of the PrometheusRule of ``config``."""
    built = manifests(config)
    monitors = {
        built[kind]["metadata"]["name"] for kind in ("servicemonitor.yaml", "podmonitor.yaml")
    }
    (monitor,) = monitors
    return monitor, built["prometheusrule.yaml"]["metadata"]["name"]


NAME_KEY = "app.kubernetes.io/name"
#: Label sets of which each two would share their objects' names if named by their values as
#: written: labels joined, case folded, "_" and "." and "--" replaced, values cut at 57.
CONFUSABLE = [
    ((NAME_KEY, "orders"), ("app.kubernetes.io/component", "api")),
    ((NAME_KEY, "orders-api"),),
    ((NAME_KEY, "Orders-API"),),
    ((NAME_KEY, "orders_api"),),
    ((NAME_KEY, "orders.api"),),
    ((NAME_KEY, "orders--api"),),
    ((NAME_KEY, "orders-api"), ("tier", "")),
    ((NAME_KEY, "x" * 57 + "a"),),
    ((NAME_KEY, "x" * 57 + "b"),),
    ((NAME_KEY, "x" * 57),),
    ((NAME_KEY, ""),),
    ((NAME_KEY, "laios"),),
]


def test_label_sets_never_share_their_objects_names() -> None:
    """Two services that generate their manifests for their own match labels and apply them in
    one namespace get names of their own, with or without a selector, however close their
    label values: where the values alone would not tell them apart (several labels, upper
    case, "_", ".", a value cut to fit), the name ends in a digest of the labels."""
    for selector in ("", 'pool="search"'):
        built = [
            names(MixinConfig(selector=selector, match_labels=labels)) for labels in CONFUSABLE
        ]
        for kind in (0, 1):
            taken = [pair[kind] for pair in built]
            assert len(set(taken)) == len(taken), taken
            assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", n) for n in taken)


def test_a_name_the_values_tell_apart_is_kept() -> None:
    """One label whose value is already a name (lower case letters, digits and single dashes,
    short enough) names the objects as before, so that an upgrade replaces them instead of
    loading a second copy of the rules; the order of several labels changes no name."""
    assert names(MixinConfig()) == ("laios", "laios")
    assert names(MixinConfig(match_labels=((NAME_KEY, "orders-api"),))) == (
        "laios-orders-api",
        "laios-orders-api",
    )
    long = "x" * 57
    assert names(MixinConfig(match_labels=((NAME_KEY, long),)))[0] == f"laios-{long}"
    pair = ((NAME_KEY, "orders"), ("app.kubernetes.io/component", "api"))
    assert names(MixinConfig(match_labels=pair)) == names(MixinConfig(match_labels=pair[::-1]))


def test_rule_names_of_long_values_and_one_selector_differ() -> None:
    """Two long values sharing their first 50 characters, generated with the same selector,
    give two PrometheusRules: the selector's digest never pushes out what tells them apart."""
    rules = {
        names(MixinConfig(selector='pool="a"', match_labels=((NAME_KEY, "y" * 50 + end),)))[1]
        for end in ("a", "b")
    }
    assert len(rules) == 2


def test_manifest_name_sets_the_objects_names() -> None:
    """manifest_name names the monitors and the PrometheusRule (plus the selector's digest)
    whatever the match labels; one Kubernetes would refuse, or too long for the digest, is
    refused at the call."""
    labels = ((NAME_KEY, "orders"), ("app.kubernetes.io/component", "api"))
    config = MixinConfig(match_labels=labels, manifest_name="orders-api")
    assert names(config) == ("orders-api", "orders-api")
    with_selector = MixinConfig(selector='job="orders-api"', manifest_name="orders-api")
    assert names(with_selector) == ("orders-api", "orders-api-789d1f3cfc")
    assert names(MixinConfig(manifest_name="x" * 52))[0] == "x" * 52
    for bad in ("Orders", "orders_api", "-orders", "x" * 53, ""):
        with pytest.raises(ValueError, match="manifest_name"):
            MixinConfig(manifest_name=bad)


@pytest.mark.parametrize("field", ["match_labels", "manifest_labels"])
def test_a_label_key_prefix_longer_than_kubernetes_takes_is_refused(field: str) -> None:
    """A label key's prefix (before the '/') is a DNS subdomain of at most 253 characters, as
    the Kubernetes API checks: one of 253 is taken, one of 254 refused at the call, naming it."""
    prefix = ".".join(["a" * 63] * 4)[:253]
    MixinConfig(**{field: ((f"{prefix}/name", "x"),)})
    with pytest.raises(ValueError, match="253"):
        MixinConfig(**{field: ((f"{prefix}b/name", "x"),)})


@pytest.mark.parametrize("field", ["match_labels", "manifest_labels"])
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("example.com/" + "n" * 64, "its name has 64 characters"),
        ("n" * 64, "its name has 64 characters"),
        ("Example.com/name", "prefix of lower case letters"),
        ("example.com/-name", "a name of 1 to 63 letters"),
        ("", "a name of 1 to 63 letters"),
    ],
)
def test_a_refused_label_key_says_what_a_key_is(field: str, key: str, reason: str) -> None:
    """A label key Kubernetes refuses was refused with no word of why; the message says what
    a key is, or that its name is too long."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        MixinConfig(**{field: ((key, "x"),)})


@pytest.mark.parametrize("field", ["match_labels", "manifest_labels"])
def test_many_label_pairs_are_checked_for_a_repeated_key_at_once(field: str) -> None:
    """The check for a key given twice counted every key in the whole list once per key: a
    config of 50,000 labels (a generated one, or as many repeated --match-label options)
    took most of a minute before it was taken. It takes milliseconds now (the margin is
    generous), and a repeated key is still named."""
    pairs = tuple((f"k{i}", "v") for i in range(50_000))
    started = time.monotonic()
    MixinConfig(**{field: pairs})
    took = time.monotonic() - started
    assert took < 5.0, f"checked in {took:.1f}s"
    with pytest.raises(ValueError, match="the label key 'k7' is given twice"):
        MixinConfig(**{field: (*pairs[:100], ("k7", "w"))})


def test_default_manifests_carry_no_metadata_labels() -> None:
    """Without manifest_labels the objects have a name and no labels to guess at."""
    assert all(m["metadata"] == {"name": "laios"} for m in manifests(MixinConfig()).values())


def guide_objects() -> dict[str, Any]:
    """The Kubernetes objects of the guide's YAML examples, by kind."""
    text = (REPO / "docs" / "guides" / "kubernetes.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL)
    objects = [doc for block in blocks for doc in yaml.safe_load_all(block)]
    return {doc["kind"]: doc for doc in objects if isinstance(doc, dict) and "kind" in doc}


def test_guide_example_names_the_port_the_monitors_scrape() -> None:
    """The guide's Deployment names container port 8489 `metrics`; its Service's port too."""
    objects = guide_objects()
    (container,) = objects["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert {"name": "metrics", "containerPort": 8489} in container["ports"]
    (port,) = objects["Service"]["spec"]["ports"]
    assert (port["name"], port["port"], port["targetPort"]) == ("metrics", 8489, "metrics")


def test_guide_example_is_selected_by_monitors_generated_for_it() -> None:
    """The example's pods and Service carry the labels the guide's --match-label selects."""
    objects = guide_objects()
    labels = {"app.kubernetes.io/name": "orders-api"}
    assert objects["Deployment"]["spec"]["template"]["metadata"]["labels"].items() >= labels.items()
    assert objects["Service"]["metadata"]["labels"].items() >= labels.items()
    text = (REPO / "docs" / "guides" / "kubernetes.md").read_text(encoding="utf-8")
    assert "--match-label app.kubernetes.io/name=orders-api" in text
