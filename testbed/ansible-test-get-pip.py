"""Stand-in for the pip bootstrap script that ansible-test downloads.

ansible-test bootstraps pip into each virtual environment it makes with a
``get-pip.py`` fetched from ci-files.testing.ansible.com, a host the test bed
cannot reach. testbed/lib.sh (ensure_ansible_test_pip) saves this file where
ansible-test looks first (~/.ansible/test/cache/get_pip_<version>.py), beside
the pip wheel it downloaded from PyPI with a pinned hash. Run the way
ansible-test runs get-pip.py, it installs pip from that wheel only, offline:
the same pip, byte for byte, on every run.
"""

import glob
import os
import sys

# get-pip.py's own options, which pip install does not know.
GET_PIP_ONLY = ('--no-setuptools', '--no-wheel')


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    wheels = sorted(glob.glob(os.path.join(here, 'pip-*-py3-none-any.whl')))
    if not wheels:
        sys.exit('no pip wheel beside %s: run testbed/lib.sh ensure_ansible_test_pip' % __file__)
    # A wheel is a zip archive that Python imports from: pip runs from its own wheel.
    sys.path.insert(0, wheels[-1])
    from pip._internal.cli.main import main as pip_main  # pylint: disable=import-outside-toplevel

    args = [a for a in sys.argv[1:] if a not in GET_PIP_ONLY]
    sys.exit(pip_main(['install', '--upgrade', '--force-reinstall', '--no-index', '--find-links', here] + args))


if __name__ == '__main__':
    main()
