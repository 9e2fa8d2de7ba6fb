//! Security-sensitive: the one place that decides "may actor A do B to C".
