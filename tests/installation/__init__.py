"""Tests of installation/."""
