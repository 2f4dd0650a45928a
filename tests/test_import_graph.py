"""The import graph of service has no cycle, at module level, anywhere (the import-linter
contracts cover named packages; this covers every module, including ones added later)."""

from __future__ import annotations

import grimp


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    # Tarjan's strongly connected components, iterative (the graph has hundreds of modules).
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m) & graph.modules) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in modules:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            if child < len(edges[node]):
                work.append((node, child + 1))
                nxt = edges[node][child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1 or node in edges[node]:
                    found.append(sorted(component))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def test_cycle_finder_sees_a_cycle() -> None:
    # The finder itself, on a graph with one known cycle and one chain.
    graph = grimp.ImportGraph()
    for importer, imported in [("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.d", "p.a")]:
        graph.add_import(importer=importer, imported=imported)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]


def test_no_import_cycle_in_service() -> None:
    # Imports under TYPE_CHECKING never run, so they cannot make a cycle at import time.
    graph = grimp.build_graph("service", exclude_type_checking_imports=True)
    assert _cycles(graph) == []


HTTP_DOMAINS = ["service.datasets", "service.inference", "service.jobs", "service.models"]
HTTP_DOMAINS += ["service.registry", "service.ui"]


def test_http_domains_reach_the_worker_through_the_executor_only() -> None:
    # The import-linter contract names today's worker modules; this covers any added later.
    graph = grimp.build_graph("service")
    domains = [d for d in HTTP_DOMAINS if d in graph.modules]
    assert "service.jobs" in domains
    reached = {
        (importer, imported)
        for domain in domains
        for importer in graph.find_descendants(domain) | {domain}
        for imported in graph.find_modules_directly_imported_by(importer)
        if imported.startswith("service.worker")
    }
    assert {imported for _, imported in reached} <= {"service.worker.executor"}
