"""Every legal source is named in one module (ftaudit.regulation.citations): no other code spells a document's
reference, so a re-published guideline or template is one edit."""

import ast
from pathlib import Path

import ftaudit
from ftaudit.regulation import citations

SRC = Path(ftaudit.__file__).parent
# Versioned references (prose may still name "the Code of Practice" or "the AI Office template").
DOCUMENT_NAMES = ("2024/1689", "C(2025)", "2019/790", "2016/679", "Opinion 28/2024", "(July 2025)")


def _strings(tree: ast.AST):
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docstrings.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node


def test_no_document_reference_outside_the_citations_module():
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        if path == Path(citations.__file__):
            continue
        for node in _strings(ast.parse(path.read_text(encoding="utf-8"))):
            for name in DOCUMENT_NAMES:
                if name in node.value:
                    offenders.append(f"{path.relative_to(SRC)}:{node.lineno}: {name}")
    assert offenders == []


def test_every_document_has_its_verified_version():
    for name in (citations.AI_ACT, citations.GUIDELINES, citations.TEMPLATE, citations.DSM_DIRECTIVE,
                 citations.GDPR, citations.EDPB_OPINION_28, citations.CODE_OF_PRACTICE):
        assert citations.VERIFIED[name]
    assert "C(2025) 5045" in citations.GUIDELINES and "C(2025) 8311" in citations.TEMPLATE
    assert citations.act("Art. 54(1)") == "Regulation (EU) 2024/1689, Art. 54(1)"
