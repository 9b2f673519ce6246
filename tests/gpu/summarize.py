#!/usr/bin/env python3
# SPDX-FileCopyrightText: 2026 the diffcoll authors
# SPDX-License-Identifier: BSD-3-Clause
"""Counts passed / failed / skipped over JUnit XML reports (ctest's
--output-junit, pytest's --junitxml) and prints one line per report, the
failures and skips by name, and a closing total line. Tests ctest lists as
disabled (the DISABLED_* entry points of rank processes, which never run by
themselves) are not counted. Exit 1 if anything failed.

  summarize.py REPORT.xml [REPORT.xml ...]
"""
import sys
import xml.etree.ElementTree as ET


def count(path):
    passed, failed, skipped = 0, [], []
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name", "?")
        if case.get("status") == "disabled" or "DISABLED_" in name:
            continue
        if case.find("failure") is not None or case.find("error") is not None:
            failed.append(name)
        elif case.find("skipped") is not None or case.get("status") == "notrun":
            skipped.append(name)
        else:
            passed += 1
    return passed, failed, skipped


def main(paths):
    total = [0, 0, 0]
    for path in paths:
        try:
            passed, failed, skipped = count(path)
        except (OSError, ET.ParseError) as e:
            print(f"{path}: unreadable ({e})")
            total[1] += 1
            continue
        print(f"{path}: {passed} passed, {len(failed)} failed, {len(skipped)} skipped")
        for name in failed:
            print(f"  FAILED {name}")
        for name in skipped:
            print(f"  skipped {name}")
        total[0] += passed
        total[1] += len(failed)
        total[2] += len(skipped)
    print(f"gpu suite: {total[0]} passed, {total[1]} failed, {total[2]} skipped")
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
