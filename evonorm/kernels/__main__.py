"""``python -m evonorm.kernels``: compile the fused CPU kernels ahead of time and print the library path."""

from evonorm import kernels

if __name__ == "__main__":
    print(kernels.build(verbose=False))
