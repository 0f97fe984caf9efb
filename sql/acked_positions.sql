SELECT k._rn FROM {{ acked }} AS k
