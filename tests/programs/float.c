/* Floating-point work: a numeric integral and a series, printed rounded. */
#include <math.h>
#include <stdio.h>

int main(void) {
    double s = 0;
    int n = 1000000;
    for (int i = 0; i < n; i++) {
        double x = (i + 0.5) / n;
        s += 4.0 / (1.0 + x * x);
    }
    double pi = s / n;
    double e = 0, f = 1;
    for (int k = 0; k < 20; k++) { e += 1.0 / f; f *= (k + 1); }
    printf("pi=%.6f e=%.6f sqrt2=%.6f\n", pi, e, sqrt(2.0));
    return 0;
}
